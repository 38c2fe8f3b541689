//! Candidate selection: which matchers could possibly match a request.
//!
//! Matchers are numbered by rank (0 = highest priority). The index narrows
//! them down by exact host and by path prefix, and yields the survivors in
//! rank order, so the first one that fully matches is the winner:
//!
//! - matchers whose hosts are all exact go into that host's bucket; the
//!   others (no hosts, or a wildcard) go into the `any_host` bucket;
//! - within a bucket, prefix paths are keyed by the prefix itself and regex
//!   paths by their leading literal text (`/users/` for `~/users/\d+`); a
//!   request looks up each distinct key length present in the bucket;
//! - pathless matchers, and regexes without a usable literal (or with a
//!   `|`), stay in the bucket's `unindexed` list.
//!
//! A lookup therefore costs a few hash probes plus the routes that really
//! share the request's host and prefix, plus the unindexed fallback.

use std::collections::HashMap;

use super::matcher::Matcher;

/// Rank of a matcher: its index in the router's sorted matcher list.
pub(super) type Rank = u32;

/// Matchers that share a host requirement, split by path kind.
#[derive(Debug, Default)]
struct PathIndex {
    by_prefix: HashMap<Box<[u8]>, Vec<Rank>>,
    /// Distinct lengths of the keys of `by_prefix`, ascending.
    prefix_lengths: Vec<usize>,
    /// Matchers without an index key (pathless, or an opaque regex), by rank.
    unindexed: Vec<Rank>,
}

impl PathIndex {
    fn insert(&mut self, rank: Rank, matcher: &Matcher) {
        let Some(prefix) = matcher.path.as_ref().and_then(|path| path.index_key()) else {
            self.unindexed.push(rank);
            return;
        };
        let key: Box<[u8]> = prefix.as_bytes().into();
        if let Err(position) = self.prefix_lengths.binary_search(&key.len()) {
            self.prefix_lengths.insert(position, key.len());
        }
        self.by_prefix.entry(key).or_default().push(rank);
    }

    /// Appends the ranks of matchers whose key starts `path`.
    fn collect_prefix_hits(&self, path: &[u8], hits: &mut Vec<Rank>) {
        for &length in self
            .prefix_lengths
            .iter()
            .take_while(|&&len| len <= path.len())
        {
            if let Some(ranks) = self.by_prefix.get(&path[..length]) {
                hits.extend_from_slice(ranks);
            }
        }
    }
}

/// The whole index: one bucket per exact host, plus the any-host bucket.
#[derive(Debug, Default)]
pub(super) struct RouteIndex {
    by_host: HashMap<String, PathIndex>,
    any_host: PathIndex,
}

impl RouteIndex {
    /// Indexes `matchers`, which must already be sorted by rank.
    pub fn build(matchers: &[Matcher]) -> Self {
        let mut index = RouteIndex::default();
        for (rank, matcher) in (0..).zip(matchers) {
            match matcher.exact_host_names() {
                Some(hosts) => {
                    for host in hosts {
                        index
                            .by_host
                            .entry(host.to_owned())
                            .or_default()
                            .insert(rank, matcher);
                    }
                }
                None => index.any_host.insert(rank, matcher),
            }
        }
        index
    }

    /// The ranks that may match a request for `host` (lowercased, without
    /// port) and normalized `path`, in ascending order. `scratch` holds the
    /// prefix hits and must outlive the iterator.
    pub fn candidates<'a>(
        &'a self,
        host: &str,
        path: &str,
        scratch: &'a mut Vec<Rank>,
    ) -> SortedMerge<'a> {
        let host_bucket = self.by_host.get(host);
        scratch.clear();
        for bucket in host_bucket.into_iter().chain([&self.any_host]) {
            bucket.collect_prefix_hits(path.as_bytes(), scratch);
        }
        scratch.sort_unstable();
        let prefix_hits: &'a [Rank] = scratch.as_slice();
        let host_unindexed = host_bucket.map_or(&[][..], |bucket| &bucket.unindexed);
        SortedMerge {
            sources: [prefix_hits, host_unindexed, &self.any_host.unindexed],
        }
    }
}

/// Merges three ascending rank lists lazily, so that a lookup stops paying
/// for candidates as soon as one matches.
#[derive(Debug)]
pub(super) struct SortedMerge<'a> {
    sources: [&'a [Rank]; 3],
}

impl Iterator for SortedMerge<'_> {
    type Item = Rank;

    fn next(&mut self) -> Option<Rank> {
        let (source, rank) = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(source, ranks)| Some((source, *ranks.first()?)))
            .min_by_key(|&(_, rank)| rank)?;
        self.sources[source] = &self.sources[source][1..];
        Some(rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_yields_ascending_ranks() {
        let merged: Vec<Rank> = SortedMerge {
            sources: [&[1, 4, 9], &[], &[0, 2, 3, 10]],
        }
        .collect();
        assert_eq!(merged, [0, 1, 2, 3, 4, 9, 10]);
    }
}
