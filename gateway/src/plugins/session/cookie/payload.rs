//! The payload: audience entries ([`decode_payload`], [`find_audience`],
//! steps 10-11) and [`KongSessionData`], Kong's session data.

use serde_json::Value;

use super::*;

/// One audience entry of the plaintext: `[data, audience, subject]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AudienceEntry {
    /// Application data; for Kong see [`KongSessionData`].
    pub data: Value,
    /// The audience (Kong's `audience` config, default `"default"`).
    pub audience: String,
    /// The subject (Kong: username, else custom_id, else consumer id).
    pub subject: Option<String>,
}

impl AudienceEntry {
    /// The JSON array for this entry; a missing subject is omitted, as
    /// lua-cjson drops a trailing nil.
    fn to_value(&self) -> Value {
        let mut entry = vec![self.data.clone(), Value::String(self.audience.clone())];
        if let Some(subject) = &self.subject {
            entry.push(Value::String(subject.clone()));
        }
        Value::Array(entry)
    }

    /// Parses one `[data, audience, subject?]` array.
    fn from_value(value: &Value) -> Result<Self, OpenError> {
        let entry = value.as_array().ok_or(OpenError::InvalidPayloadShape)?;
        let audience = entry
            .get(1)
            .and_then(Value::as_str)
            .ok_or(OpenError::InvalidPayloadShape)?;
        Ok(Self {
            data: entry.first().cloned().unwrap_or(Value::Null),
            audience: audience.to_string(),
            subject: entry.get(2).and_then(Value::as_str).map(str::to_string),
        })
    }
}

/// Encodes audience entries as the JSON plaintext `[[data, audience, subject], ...]`.
pub fn encode_payload(entries: &[AudienceEntry]) -> Vec<u8> {
    let entries = entries.iter().map(AudienceEntry::to_value).collect();
    Value::Array(entries).to_string().into_bytes()
}

/// Step 10: decodes the JSON plaintext into audience entries.
pub fn decode_payload(plaintext: &[u8]) -> Result<Vec<AudienceEntry>, OpenError> {
    let value: Value = serde_json::from_slice(plaintext).map_err(|_| OpenError::InvalidJson)?;
    let entries = value.as_array().ok_or(OpenError::InvalidPayloadShape)?;
    entries.iter().map(AudienceEntry::from_value).collect()
}

/// Step 11: the index of the first entry for `audience`.
pub fn find_audience(entries: &[AudienceEntry], audience: &str) -> Result<usize, OpenError> {
    entries
        .iter()
        .position(|entry| entry.audience == audience)
        .ok_or(OpenError::MissingAudience)
}

/// Kong's session data: `[consumer_id, credential_id]`, or
/// `[consumer_id, credential_id, [groups...]]` when groups exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KongSessionData {
    /// The consumer's id.
    pub consumer_id: String,
    /// The credential's id (Kong stores the consumer id when there is none).
    pub credential_id: Option<String>,
    /// Authenticated groups, if any.
    pub groups: Option<Vec<String>>,
}

impl KongSessionData {
    /// The JSON array Kong stores as the entry's data.
    pub fn to_value(&self) -> Value {
        let mut data = vec![Value::String(self.consumer_id.clone())];
        let credential = self
            .credential_id
            .clone()
            .map_or(Value::Null, Value::String);
        match &self.groups {
            Some(groups) => {
                let groups = groups.iter().cloned().map(Value::String).collect();
                data.extend([credential, Value::Array(groups)]);
            }
            None if !credential.is_null() => data.push(credential),
            None => {}
        }
        Value::Array(data)
    }

    /// Reads Kong's data array; `None` when it has no string consumer id.
    /// An empty Lua table (encoded as `{}`) counts as an empty group list.
    pub fn from_value(value: &Value) -> Option<Self> {
        let data = value.as_array()?;
        let consumer_id = data.first()?.as_str()?.to_string();
        let credential_id = data.get(1).and_then(Value::as_str).map(str::to_string);
        let groups = data.get(2).and_then(groups_from_value);
        Some(Self {
            consumer_id,
            credential_id,
            groups,
        })
    }
}

/// A group list: an array of strings (non-strings skipped) or an empty object.
pub(super) fn groups_from_value(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(groups) => Some(
            groups
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        Value::Object(map) if map.is_empty() => Some(Vec::new()),
        _ => None,
    }
}
