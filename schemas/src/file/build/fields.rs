//! [`Fields`]: an entity's fields as read from a file, held compactly
//! until validation turns them into a JSON object.
//!
//! A large file's entities wait in this form from the moment they are
//! flattened until each is validated, all at once: a YAML mapping read into
//! a `serde_json::Map` keeps a hash table and room for three fields even
//! when it holds one (a key-auth credential's `key`), ~380 bytes where the
//! field itself takes 96. Here the fields sit in a list of their exact
//! length, found by a scan (an entity has a handful). The operations keep
//! the order a `serde_json::Map` (with `preserve_order`) would, so the
//! object validation gets is the same, key for key, as before.

use serde_json::{Map, Value};

/// The fields of one entity, in the order a `serde_json::Map` would list
/// them after the same operations.
#[derive(Debug, Clone, Default)]
pub(super) struct Fields(Vec<(String, Value)>);

impl From<Map<String, Value>> for Fields {
    /// The map's fields in its order, in a list of exactly their number.
    fn from(map: Map<String, Value>) -> Self {
        // Not `collect`: it makes room for four at least.
        let mut fields = Vec::with_capacity(map.len());
        fields.extend(map);
        Fields(fields)
    }
}

impl Fields {
    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(name, _)| name == key)
    }

    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find_map(|(name, value)| (name == key).then_some(value))
    }

    /// The value of `key`, set to `default()` first when it has none (the
    /// field goes last, as `Map::entry(..).or_insert_with` places it).
    pub(super) fn get_or_insert_with(
        &mut self,
        key: &str,
        default: impl FnOnce() -> Value,
    ) -> &mut Value {
        let index = match self.position(key) {
            Some(index) => index,
            None => {
                self.0.push((key.to_owned(), default()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }

    /// Take out `key`'s value; the last field takes its place, as
    /// `Map::remove` does with `preserve_order` (a swap remove).
    pub(super) fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.position(key)?;
        Some(self.0.swap_remove(index).1)
    }

    /// The JSON object of these fields, in their order.
    pub(super) fn into_map(self) -> Map<String, Value> {
        self.0.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("the tests give objects"),
        }
    }

    /// Every operation leaves the fields in the order the map would have.
    #[test]
    fn keeps_the_order_a_map_keeps() {
        let written = map(json!({"a": 1, "b": 2, "c": 3, "d": 4}));
        let mut expected = written.clone();
        let mut fields = Fields::from(written);
        assert_eq!(fields.remove("b"), expected.remove("b"));
        assert_eq!(fields.remove("x"), expected.remove("x"));
        *fields.get_or_insert_with("e", || json!(5)) = json!(6);
        *expected.entry("e").or_insert_with(|| json!(5)) = json!(6);
        fields.get_or_insert_with("a", || json!(0));
        expected.entry("a").or_insert_with(|| json!(0));
        assert_eq!(fields.get("e"), Some(&json!(6)));
        assert_eq!(fields.get("b"), None);
        let (got, want) = (fields.into_map(), expected);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        assert_eq!(got, want);
    }

    /// The list is as long as the fields, not a map's three-field minimum.
    #[test]
    fn holds_exactly_its_fields() {
        let fields = Fields::from(map(json!({"key": "secret"})));
        assert_eq!(fields.0.capacity(), 1);
    }
}
