//! The bytes of one change-log entry (`gw_config_changes.changes`): the row
//! changes of one commit, in order.
//!
//! Layout (version 1, integers big endian): `1`, then per change the kind's
//! index (u8), the id (16 bytes), `0` for a removal or `1`, a length (u32)
//! and the row's bytes for a put. Decoding checks every length and never
//! panics on bad bytes.

use bytes::Bytes;
use schemas::EntityKind;
use uuid::Uuid;

use super::PgError;
use crate::store::backend::LoggedChange;

const VERSION: u8 = 1;

/// The entry of `changes`.
pub fn encode(changes: &[LoggedChange]) -> Vec<u8> {
    let size: usize = changes
        .iter()
        .map(|change| 22 + change.row.as_ref().map_or(0, Bytes::len))
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(VERSION);
    for change in changes {
        out.push(change.kind.index() as u8);
        out.extend_from_slice(change.id.as_bytes());
        match &change.row {
            None => out.push(0),
            Some(row) => {
                out.push(1);
                out.extend_from_slice(&(row.len() as u32).to_be_bytes());
                out.extend_from_slice(row);
            }
        }
    }
    out
}

/// The changes of an entry.
pub fn decode(bytes: &[u8]) -> Result<Vec<LoggedChange>, PgError> {
    let corrupt = |what: &str| PgError::Corrupt(format!("change-log entry: {what}"));
    let (&version, mut rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if version != VERSION {
        return Err(corrupt("unknown version"));
    }
    let mut changes = Vec::new();
    while !rest.is_empty() {
        let (head, tail) = split(rest, 18).ok_or_else(|| corrupt("truncated"))?;
        let kind = *EntityKind::ALL
            .get(usize::from(head[0]))
            .ok_or_else(|| corrupt("unknown kind"))?;
        let id = Uuid::from_slice(&head[1..17]).map_err(|_| corrupt("bad id"))?;
        rest = tail;
        let row = match head[17] {
            0 => None,
            1 => {
                let (length, tail) = split(rest, 4).ok_or_else(|| corrupt("truncated"))?;
                let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
                let (row, tail) =
                    split(tail, length as usize).ok_or_else(|| corrupt("truncated row"))?;
                rest = tail;
                Some(Bytes::copy_from_slice(row))
            }
            _ => return Err(corrupt("bad flag")),
        };
        changes.push(LoggedChange { kind, id, row });
    }
    Ok(changes)
}

fn split(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (bytes.len() >= at).then(|| bytes.split_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_bytes_are_errors() {
        let changes = vec![
            LoggedChange {
                kind: EntityKind::Service,
                id: Uuid::new_v4(),
                row: None,
            },
            LoggedChange {
                kind: EntityKind::Plugin,
                id: Uuid::new_v4(),
                row: Some(Bytes::from_static(b"{\"name\":\"session\"}")),
            },
        ];
        let bytes = encode(&changes);
        assert_eq!(decode(&bytes).unwrap(), changes);
        for cut in 0..bytes.len() - 1 {
            let truncated = &bytes[..cut];
            if cut == 1 || cut == 19 {
                // Ends exactly after a whole change: a shorter valid entry.
                assert!(decode(truncated).is_ok());
            } else {
                assert!(decode(truncated).is_err(), "cut at {cut}");
            }
        }
        assert!(decode(&[2]).is_err());
    }
}
