//! The session plugin.

pub mod cookie;
pub mod storage;
