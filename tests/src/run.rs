//! One-shot commands: [`gwctl`], [`Run`] and the [`Output`] they give.

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::*;

/// What a finished command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; -1 when the process was ended by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panic, showing the whole output, unless the exit code is `code`.
    #[track_caller]
    pub fn assert_status(&self, code: i32) -> &Self {
        assert_eq!(self.status, code, "unexpected exit code\n{self}");
        self
    }

    /// The lines of stderr, without their line ends.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// The whole output, for assertion messages.
impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exit code: {}", self.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Run `gwctl ARGS...` in the repository root, with no stdin.
pub fn gwctl(args: &[&str]) -> Output {
    Run::gwctl(args).run()
}

/// A command to run: the program, its arguments, stdin text, extra
/// environment variables and working directory.
///
/// ```no_run
/// let out = e2e::Run::gwctl(&["validate", "-"])
///     .stdin("_format_version: \"3.0\"\n")
///     .env("DECK_HOST", "127.0.0.1")
///     .run();
/// assert_eq!(out.status, 0, "{out}");
/// ```
#[derive(Debug, Clone)]
pub struct Run {
    program: PathBuf,
    args: Vec<OsString>,
    stdin: Option<String>,
    envs: Vec<(OsString, OsString)>,
    dir: PathBuf,
    timeout: Duration,
}

impl Run {
    /// Any program; the arguments can be added with [`Run::arg`].
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            envs: Vec::new(),
            dir: repo_root(),
            timeout: RUN_TIMEOUT,
        }
    }

    /// `gwctl ARGS...`.
    pub fn gwctl(args: &[&str]) -> Self {
        Self::new(gwctl_bin()).args(args)
    }

    /// `gateway ARGS...` run to completion (e.g. a start that must fail).
    pub fn gateway(args: &[&str]) -> Self {
        Self::new(gateway_bin()).args(args)
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<OsString> + Clone>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().cloned().map(Into::into));
        self
    }

    /// Text written to the command's stdin (which is empty otherwise).
    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// One more environment variable.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// The working directory (the repository root by default).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// How long to wait before killing the command and failing the test.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `gwctl validate x.yaml`, for messages.
    pub(crate) fn describe(&self) -> String {
        let name = self.program.file_name().unwrap_or(self.program.as_os_str());
        let mut text = name.to_string_lossy().into_owned();
        for arg in &self.args {
            text.push(' ');
            text.push_str(&arg.to_string_lossy());
        }
        text
    }

    /// The command with a clean environment and piped stdout/stderr.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.dir)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", isolated_home())
            .envs(self.envs.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Run to completion and collect the output.
    #[track_caller]
    pub fn run(&self) -> Output {
        let (output, finished) = self.execute().unwrap_or_else(|error| panic!("{error}"));
        assert!(
            finished,
            "`{}` did not finish within {:?}\n{output}",
            self.describe(),
            self.timeout
        );
        output
    }

    /// Like [`Run::run`], but a command still running at the timeout is
    /// killed and reported with status -1 instead of failing the test.
    pub fn try_run(&self) -> Output {
        match self.execute() {
            Ok((output, _)) => output,
            Err(error) => Output {
                status: -1,
                stdout: String::new(),
                stderr: error,
            },
        }
    }

    /// Runs the command; whether it finished in time, or why it could not
    /// start.
    fn execute(&self) -> Result<(Output, bool), String> {
        let mut command = self.command();
        command.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command
            .spawn()
            .map_err(|error| format!("cannot start `{}`: {error}", self.describe()))?;
        if let (Some(text), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A command that exits without reading stdin closes the pipe;
            // that is its business, not a harness error.
            thread::spawn(move || drop(pipe.write_all(text.as_bytes())));
        }
        let stdout = read_all_in_background(child.stdout.take());
        let stderr = read_all_in_background(child.stderr.take());
        let finished = wait_until(&mut child, Instant::now() + self.timeout);
        if finished.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let output = Output {
            status: finished.map_or(-1, exit_code),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        Ok((output, finished.is_some()))
    }
}

pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

pub(crate) fn read_all_in_background(
    pipe: Option<impl Read + Send + 'static>,
) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Wait for `child` to exit, until `deadline`; `None` if it is still running.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}
