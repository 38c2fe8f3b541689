//! Listing: page size, opaque offsets and tag filters, as Kong's
//! `endpoints.lua` and DAO `page` accept them.
//!
//! Entities are listed in id order. An offset is the base64 of a JSON
//! array holding the last id of the previous page, like Kong's Postgres
//! strategy; it is only a position, so writes between pages never make it
//! invalid.

use base64::Engine;
use serde_json::Value;

use super::error::StoreError;

/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page size allowed.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The most tags one query may name.
pub const MAX_QUERY_TAGS: usize = 5;

/// Which tagged entities a listing keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// `?tags=a,b`: entities carrying every tag.
    All(Vec<String>),
    /// `?tags=a/b`: entities carrying at least one of the tags.
    Any(Vec<String>),
}

impl TagFilter {
    /// Parse Kong's `tags` query argument.
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        if raw.is_empty() {
            // Kong: `?tags=` is `invalid option (tags: cannot be null)`.
            return Err(invalid_tags("cannot be null"));
        }
        let filter = if is_tag_list(raw, ',') {
            TagFilter::All(split_tags(raw, ','))
        } else if is_tag_list(raw, '/') {
            TagFilter::Any(split_tags(raw, '/'))
        } else {
            return Err(invalid_tags("invalid filter syntax"));
        };
        if filter.tags().len() > MAX_QUERY_TAGS {
            return Err(invalid_tags("cannot query more than 5 tags"));
        }
        Ok(filter)
    }

    fn tags(&self) -> &[String] {
        match self {
            TagFilter::All(tags) | TagFilter::Any(tags) => tags,
        }
    }

    /// Does a canonical entity pass the filter?
    pub fn matches(&self, entity: &Value) -> bool {
        let carried: Vec<&str> = entity
            .get("tags")
            .and_then(Value::as_array)
            .map(|tags| tags.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match self {
            TagFilter::All(wanted) => wanted.iter().all(|tag| carried.contains(&tag.as_str())),
            TagFilter::Any(wanted) => wanted.iter().any(|tag| carried.contains(&tag.as_str())),
        }
    }
}

fn invalid_tags(message: &str) -> StoreError {
    StoreError::InvalidOptions {
        option: "tags",
        message: message.to_owned(),
    }
}

/// Kong's tag characters: printable ASCII except `,` and `/`, or non-ASCII.
fn is_tag_char(c: char) -> bool {
    !c.is_ascii() || (c.is_ascii_graphic() || c == ' ') && c != ',' && c != '/'
}

/// `a<sep>b<sep>c`: non-empty runs of tag characters joined by `sep`.
fn is_tag_list(raw: &str, sep: char) -> bool {
    let mut parts = raw.split(sep).peekable();
    let mut seen = false;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if part.is_empty() && last && seen {
            return true;
        }
        if part.is_empty() || !part.chars().all(is_tag_char) {
            return false;
        }
        seen = true;
    }
    seen
}

fn split_tags(raw: &str, sep: char) -> Vec<String> {
    raw.split(sep)
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a listing asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub size: usize,
    /// The id after which this page starts.
    pub after: Option<String>,
    pub tags: Option<TagFilter>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            size: DEFAULT_PAGE_SIZE,
            after: None,
            tags: None,
        }
    }
}

impl ListQuery {
    /// Parse the `size`, `offset` and `tags` query arguments.
    pub fn parse(
        size: Option<&str>,
        offset: Option<&str>,
        tags: Option<&str>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            size: size
                .map(parse_size)
                .transpose()?
                .unwrap_or(DEFAULT_PAGE_SIZE),
            after: offset.map(decode_offset).transpose()?,
            tags: tags.map(TagFilter::parse).transpose()?,
        })
    }
}

fn parse_size(raw: &str) -> Result<usize, StoreError> {
    let number: f64 = raw
        .trim()
        .parse()
        .map_err(|_| StoreError::InvalidSize("size must be a number".to_owned()))?;
    let whole = number.fract() == 0.0 && (1.0..=MAX_PAGE_SIZE as f64).contains(&number);
    if !whole {
        return Err(StoreError::InvalidSize(format!(
            "size must be an integer between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok(number as usize)
}

/// The opaque offset for a page that ended at `last_id`.
pub fn encode_offset(last_id: &str) -> String {
    let json = Value::Array(vec![Value::from(last_id)]).to_string();
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn decode_offset(raw: &str) -> Result<String, StoreError> {
    let invalid = |reason| StoreError::InvalidOffset {
        offset: raw.to_owned(),
        reason,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| invalid("bad base64 encoding"))?;
    let decoded: Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("bad json encoding"))?;
    match decoded.as_array().map(Vec::as_slice) {
        Some([Value::String(id)]) => Ok(id.clone()),
        _ => Err(invalid("bad json encoding")),
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub data: Vec<Value>,
    /// Set when more entities follow.
    pub offset: Option<String>,
}

/// One page as stored rows (see `Store::list_rows`).
#[derive(Debug)]
pub struct RowPage {
    /// Each entity's compact canonical JSON.
    pub rows: Vec<bytes::Bytes>,
    /// Set when more entities follow.
    pub offset: Option<String>,
}

/// Take one page from entities in id order, already past the offset.
pub(crate) fn paginate(
    entities: impl Iterator<Item = Result<Value, StoreError>>,
    query: &ListQuery,
) -> Result<Page, StoreError> {
    let mut data = Vec::with_capacity(query.size.min(DEFAULT_PAGE_SIZE));
    let mut more = false;
    for entity in entities {
        let entity = entity?;
        if !query
            .tags
            .as_ref()
            .is_none_or(|filter| filter.matches(&entity))
        {
            continue;
        }
        if data.len() == query.size {
            more = true;
            break;
        }
        data.push(entity);
    }
    let offset = match data.last() {
        Some(last) if more => last.get("id").and_then(Value::as_str).map(encode_offset),
        _ => None,
    };
    Ok(Page { data, offset })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_and_or() {
        assert_eq!(
            TagFilter::parse("a,b").unwrap(),
            TagFilter::All(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            TagFilter::parse("a/b").unwrap(),
            TagFilter::Any(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            TagFilter::parse("a").unwrap(),
            TagFilter::All(vec!["a".into()])
        );
        let mixed = TagFilter::parse("a,b/c").unwrap_err();
        assert_eq!(
            mixed.to_string(),
            "invalid option (tags: invalid filter syntax)"
        );
        let many = TagFilter::parse("1,2,3,4,5,6").unwrap_err();
        assert_eq!(
            many.kong_body()["options"]["tags"],
            "cannot query more than 5 tags"
        );
        let entity = json!({"tags": ["a", "c"]});
        assert!(!TagFilter::parse("a,b").unwrap().matches(&entity));
        assert!(TagFilter::parse("a/b").unwrap().matches(&entity));
    }

    #[test]
    fn sizes_like_kong() {
        assert_eq!(ListQuery::parse(Some("3"), None, None).unwrap().size, 3);
        let not_number = ListQuery::parse(Some("x"), None, None).unwrap_err();
        assert_eq!(
            not_number.kong_body(),
            json!({"code": 9, "name": "invalid size", "message": "size must be a number"})
        );
        let too_big = ListQuery::parse(Some("1001"), None, None).unwrap_err();
        assert_eq!(
            too_big.to_string(),
            "size must be an integer between 1 and 1000"
        );
        assert!(ListQuery::parse(Some("0"), None, None).is_err());
    }

    #[test]
    fn offsets_round_trip_and_reject_garbage() {
        let token = encode_offset("abc");
        assert_eq!(
            ListQuery::parse(None, Some(&token), None)
                .unwrap()
                .after
                .as_deref(),
            Some("abc")
        );
        let bad = ListQuery::parse(None, Some("x"), None).unwrap_err();
        assert_eq!(
            bad.kong_body(),
            json!({"code": 7, "name": "invalid offset",
                "message": "'x' is not a valid offset: bad base64 encoding"})
        );
    }
}
