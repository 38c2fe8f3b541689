//! The key-auth credential entity (`keyauth_credentials`).

use base64::Engine;
use rand::Rng;

use super::common;
use crate::schema::{Field, Record};

pub fn schema() -> Record {
    Record::new(vec![
        common::id(),
        common::created_at(),
        Field::foreign("consumer", "consumers").required(),
        Field::string("key").auto().secret(),
        Field::integer("ttl").between(0, 100_000_000),
        common::tags(),
    ])
}

/// A new random key as Kong makes one: 24 random bytes in base64, with `/`
/// and `+` swapped for random letters, giving 32 alphanumeric characters.
pub fn generate_key() -> String {
    let mut rng = rand::thread_rng();
    let bytes: [u8; 24] = rng.gen();
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '/' => rng.gen_range(b'A'..=b'Z') as char,
            '+' => rng.gen_range(b'a'..=b'z') as char,
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_keys_are_alphanumeric_and_distinct() {
        let first = super::generate_key();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, super::generate_key());
    }
}
