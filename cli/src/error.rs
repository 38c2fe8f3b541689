//! Command errors and how they map to exit codes.

use std::fmt;
use std::process::ExitCode;

/// What kind of failure ended a command; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input files, a rejected change, an unreachable gateway: exit 1.
    User,
    /// A bug or an unexpected answer: exit 1 as well, reported as such.
    Internal,
}

/// An error a command ends with: a headline and optional detail lines
/// (each diagnostic of an invalid file, say).
#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub details: Vec<String>,
}

impl CommandError {
    pub fn user(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::User,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(1)
    }

    /// Print to stderr: the details first, then `Error: <message>`.
    pub fn print(&self) {
        for line in &self.details {
            eprintln!("{line}");
        }
        match self.kind {
            ErrorKind::User => eprintln!("Error: {}", self.message),
            ErrorKind::Internal => eprintln!("Error (internal): {}", self.message),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> Self {
        Self::user(format!("{error:#}"))
    }
}
