//! decK's environment templating: `${{ env "DECK_NAME" }}` in the raw text
//! of a state file, expanded before the text is parsed.
//!
//! decK renders the whole file with Go's `text/template`, delimiters
//! `${{` and `}}`, and these functions:
//!
//! * `env "DECK_X"`: the variable's value. Names must start with `DECK_`
//!   and the variable must be set (same error texts as decK).
//! * `toBool`, `toInt`, `toFloat`: parse a string like Go's
//!   `strconv.ParseBool`, `strconv.Atoi` and `strconv.ParseFloat`; the
//!   result is printed the way Go prints it (`true`, `42`, `1e+06`).
//! * `indent N`: adds `N` spaces after every newline of its argument.
//!
//! Arguments are piped (`${{ env "DECK_N" | toInt }}`) or parenthesised
//! (`${{ toInt (env "DECK_N") }}`). Go's `{{-`/`-}}` whitespace trimming
//! and `/* comments */` work as in Go. Anything else `text/template` can do
//! (`if`, `range`, variables, `printf` and the other built-ins) is
//! rejected with an error rather than silently misread; decK files do not
//! use them in practice.
//!
//! The environment is injected ([`EnvLookup`]) so tests need not touch the
//! process environment, and every substituted variable is reported
//! ([`Substitution`]) so diff output can mask the values.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Prefix every templated variable name must have.
pub const ENV_PREFIX: &str = "DECK_";

const OPEN: &str = "${{";

/// Widest `indent` accepted.
const MAX_INDENT: i64 = 1024;
const CLOSE: &str = "}}";

/// Where variable values come from.
pub trait EnvLookup {
    /// The value of `name`, or `None` if it is not set.
    fn lookup(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> EnvLookup for F {
    fn lookup(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The environment of the running process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvLookup for ProcessEnv {
    fn lookup(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

/// A variable whose value went into the rendered text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    /// The variable name, e.g. `DECK_API_KEY`.
    pub name: String,
    /// Its raw value, before any `toInt`-style conversion.
    pub value: String,
}

/// The result of [`render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered<'a> {
    /// The text with every template action replaced by its output;
    /// borrowed when the input had no `${{`.
    pub text: Cow<'a, str>,
    /// The variables used, each once, in order of first use.
    pub substitutions: Vec<Substitution>,
}

/// A template that failed to parse or to execute, located at its `${{`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct TemplateError {
    /// 1-based line of the `${{` that failed.
    pub line: usize,
    /// 1-based column (in characters) of that `${{`.
    pub column: usize,
    /// What went wrong, without the position; decK's own text where decK
    /// has one (e.g. `environment variable 'DECK_X' present in state file
    /// but not set`).
    pub message: String,
}

/// Expands every `${{ ... }}` action of `text`; the first error.
pub fn render<'a>(text: &'a str, env: &dyn EnvLookup) -> Result<Rendered<'a>, TemplateError> {
    render_all(text, env).map_err(|mut errors| errors.remove(0))
}

/// Expands every `${{ ... }}` action of `text`. A variable that is unset
/// (or lacks the `DECK_` prefix) does not stop the rendering: every such
/// variable is reported, each once at its first use, so that a user sees
/// all the variables to set at once. Any other error stops at once.
/// The error list is never empty.
pub fn render_all<'a>(
    text: &'a str,
    env: &dyn EnvLookup,
) -> Result<Rendered<'a>, Vec<TemplateError>> {
    if !text.contains(OPEN) {
        return Ok(Rendered {
            text: Cow::Borrowed(text),
            substitutions: Vec::new(),
        });
    }
    let mut renderer = Renderer {
        env,
        out: String::with_capacity(text.len()),
        substitutions: Vec::new(),
        missing: Vec::new(),
        failed_reads: 0,
    };
    let mut errors = Vec::new();
    if let Err(error) = renderer.run(text, &mut errors) {
        errors.push(error);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rendered {
        text: Cow::Owned(renderer.out),
        substitutions: renderer.substitutions,
    })
}

/// Looks up `name` with decK's rules: it must start with [`ENV_PREFIX`] and
/// be set. The error is decK's message.
pub fn lookup_deck_env(name: &str, env: &dyn EnvLookup) -> Result<String, String> {
    if !name.starts_with(ENV_PREFIX) {
        return Err(format!(
            "environment variables in the state file must be prefixed with '{ENV_PREFIX}', found: '{name}'"
        ));
    }
    env.lookup(name)
        .ok_or_else(|| format!("environment variable '{name}' present in state file but not set"))
}

/// Records `name` in `substitutions` unless it is there already.
pub(crate) fn record_substitution(substitutions: &mut Vec<Substitution>, name: &str, value: &str) {
    if !substitutions.iter().any(|s| s.name == name) {
        substitutions.push(Substitution {
            name: name.to_owned(),
            value: value.to_owned(),
        });
    }
}

/// The 1-based line and column of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

struct Renderer<'e> {
    env: &'e dyn EnvLookup,
    out: String,
    substitutions: Vec<Substitution>,
    /// Variables that could not be read so far (decK's message for each).
    missing: Vec<String>,
    /// How many reads of a variable failed, repeated ones included.
    failed_reads: usize,
}

/// The bounds of one `${{ ... }}` action.
struct Action<'t> {
    /// The text between the delimiters, without trim markers.
    body: &'t str,
    /// `${{- `: trim whitespace before the action.
    trim_before: bool,
    /// ` -}}`: trim whitespace after the action.
    trim_after: bool,
    /// Byte offset just past the closing `}}`.
    end: usize,
}

impl Renderer<'_> {
    /// Render `text` into `self.out`. Unreadable variables are added to
    /// `missing` (each once, at its first action); any other error ends
    /// the run. An action that read an unreadable variable may fail later
    /// (`toInt` of nothing): that failure follows from the variable and
    /// is not reported.
    fn run(&mut self, text: &str, missing: &mut Vec<TemplateError>) -> Result<(), TemplateError> {
        let mut rest = 0;
        let mut trim_next = false;
        while let Some(found) = text[rest..].find(OPEN) {
            let open = rest + found;
            let action =
                scan_action(text, open).map_err(|message| error_at(text, open, message))?;
            let mut literal = &text[rest..open];
            if trim_next {
                literal = trim_go_space_start(literal);
            }
            if action.trim_before {
                literal = trim_go_space_end(literal);
            }
            self.out.push_str(literal);
            let (missing_before, failed_before) = (self.missing.len(), self.failed_reads);
            let result = self.execute(action.body);
            for message in &self.missing[missing_before..] {
                missing.push(error_at(text, open, message.clone()));
            }
            match result {
                Err(_) if self.failed_reads > failed_before => {}
                Err(message) => return Err(error_at(text, open, message)),
                Ok(()) => {}
            }
            trim_next = action.trim_after;
            rest = action.end;
        }
        let mut tail = &text[rest..];
        if trim_next {
            tail = trim_go_space_start(tail);
        }
        self.out.push_str(tail);
        Ok(())
    }

    fn execute(&mut self, body: &str) -> Result<(), String> {
        let trimmed = body.trim_matches(is_go_space);
        if trimmed.starts_with("/*") {
            return if trimmed.ends_with("*/") && trimmed.len() >= 4 {
                Ok(())
            } else {
                Err("comment ends before closing delimiter".to_owned())
            };
        }
        let tokens = tokenize(body)?;
        let mut parser = ExprParser {
            tokens: &tokens,
            at: 0,
        };
        let pipeline = parser.pipeline()?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(format!("unexpected {} in action", token.describe()));
        }
        let value = self.eval_pipeline(&pipeline)?;
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{value}");
        Ok(())
    }

    fn eval_pipeline(&mut self, pipeline: &[Command]) -> Result<TValue, String> {
        let mut piped = None;
        for command in pipeline {
            piped = Some(self.eval_command(command, piped)?);
        }
        piped.ok_or_else(|| "missing value for command".to_owned())
    }

    fn eval_command(&mut self, command: &Command, piped: Option<TValue>) -> Result<TValue, String> {
        let mut args = Vec::with_capacity(command.args.len() + 1);
        for arg in &command.args {
            args.push(match arg {
                Operand::Literal(value) => value.clone(),
                Operand::Group(pipeline) => self.eval_pipeline(pipeline)?,
                Operand::Func(name) => self.call(name, Vec::new())?,
            });
        }
        args.extend(piped);
        match &command.head {
            Operand::Func(name) => self.call(name, args),
            Operand::Literal(_) | Operand::Group(_) if !args.is_empty() => Err(format!(
                "can't give argument to non-function {}",
                command.head.describe()
            )),
            Operand::Literal(value) => Ok(value.clone()),
            Operand::Group(pipeline) => self.eval_pipeline(pipeline),
        }
    }

    fn call(&mut self, name: &str, args: Vec<TValue>) -> Result<TValue, String> {
        match name {
            "env" => {
                let [TValue::Str(var)] = expect_args::<1>(name, args)? else {
                    return Err(wrong_type(name));
                };
                match lookup_deck_env(&var, self.env) {
                    Ok(value) => {
                        record_substitution(&mut self.substitutions, &var, &value);
                        Ok(TValue::Str(value))
                    }
                    Err(message) => {
                        self.failed_reads += 1;
                        if !self.missing.contains(&message) {
                            self.missing.push(message.clone());
                        }
                        Err(message)
                    }
                }
            }
            "toBool" => string_arg(name, args).and_then(|s| go_parse_bool(&s)),
            "toInt" => string_arg(name, args).and_then(|s| go_atoi(&s)),
            "toFloat" => string_arg(name, args).and_then(|s| go_parse_float(&s)),
            "indent" => {
                let [TValue::Int(spaces), TValue::Str(text)] = expect_args::<2>(name, args)? else {
                    return Err(wrong_type(name));
                };
                // Go would try to allocate any width; a cap keeps a typo
                // from exhausting memory.
                if spaces > MAX_INDENT {
                    return Err(format!(
                        "error calling indent: {spaces} spaces is more than {MAX_INDENT}"
                    ));
                }
                let pad = " ".repeat(usize::try_from(spaces).unwrap_or(0));
                Ok(TValue::Str(text.replace('\n', &format!("\n{pad}"))))
            }
            _ => Err(format!("function \"{name}\" not defined")),
        }
    }
}

fn expect_args<const N: usize>(name: &str, args: Vec<TValue>) -> Result<[TValue; N], String> {
    let got = args.len();
    args.try_into()
        .map_err(|_| format!("wrong number of args for {name}: want {N} got {got}"))
}

fn string_arg(name: &str, args: Vec<TValue>) -> Result<String, String> {
    match expect_args::<1>(name, args)? {
        [TValue::Str(text)] => Ok(text),
        _ => Err(wrong_type(name)),
    }
}

fn wrong_type(name: &str) -> String {
    format!("error calling {name}: wrong type of argument")
}

fn error_at(text: &str, offset: usize, message: String) -> TemplateError {
    let (line, column) = line_column(text, offset);
    TemplateError {
        line,
        column,
        message,
    }
}

/// Go's template whitespace: space, tab, carriage return, newline.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn trim_go_space_start(text: &str) -> &str {
    text.trim_start_matches(is_go_space)
}

fn trim_go_space_end(text: &str) -> &str {
    text.trim_end_matches(is_go_space)
}

/// Finds the end of the action opened at byte `open`. `}}` inside string
/// literals does not close it.
fn scan_action(text: &str, open: usize) -> Result<Action<'_>, String> {
    let start = open + OPEN.len();
    let inner = &text[start..];
    let trim_before = inner.starts_with('-') && inner[1..].starts_with(is_go_space);
    let body_start = if trim_before { start + 1 } else { start };
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text[body_start..].char_indices() {
        let at = body_start + i;
        match quote {
            Some(_) if escaped => escaped = false,
            Some('`') if c == '`' => quote = None,
            Some(q) if q != '`' && c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(q) if q != '`' && c == '\n' => return Err("unterminated quoted string".to_owned()),
            Some(_) => {}
            None if matches!(c, '"' | '`' | '\'') => quote = Some(c),
            None if text[at..].starts_with(CLOSE) => {
                let body = &text[body_start..at];
                let trim_after =
                    body.ends_with('-') && body[..body.len() - 1].ends_with(is_go_space);
                let body = if trim_after {
                    &body[..body.len() - 1]
                } else {
                    body
                };
                return Ok(Action {
                    body,
                    trim_before,
                    trim_after,
                    end: at + CLOSE.len(),
                });
            }
            None => {}
        }
    }
    Err("unclosed action".to_owned())
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
enum TValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for TValue {
    /// Prints like Go's `fmt.Print`, which `text/template` uses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TValue::Str(text) => f.write_str(text),
            TValue::Int(int) => write!(f, "{int}"),
            TValue::Float(float) => f.write_str(&go_format_float(*float)),
            TValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Value(TValue),
    Pipe,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("identifier {name:?}"),
            Token::Value(value) => format!("value {value}"),
            Token::Pipe => "'|'".to_owned(),
            Token::Open => "'('".to_owned(),
            Token::Close => "')'".to_owned(),
        }
    }
}

/// Keywords and syntax of `text/template` this subset does not support.
const UNSUPPORTED_KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

fn tokenize(body: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        let rest = &body[i..];
        if is_go_space(c) {
            chars.next();
            continue;
        }
        let (token, len) = match c {
            '|' => (Token::Pipe, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '"' => string_literal(rest)?,
            '`' => raw_string_literal(rest)?,
            '0'..='9' | '-' | '+' => number_literal(rest)?,
            c if c.is_alphabetic() || c == '_' => identifier(rest)?,
            '.' | '$' => return Err(unsupported(rest)),
            _ => return Err(format!("unexpected {c:?} in action")),
        };
        tokens.push(token);
        let end = i + len;
        while chars.peek().is_some_and(|&(j, _)| j < end) {
            chars.next();
        }
    }
    Ok(tokens)
}

fn unsupported(rest: &str) -> String {
    let word: String = rest.chars().take_while(|c| !is_go_space(*c)).collect();
    format!(
        "unsupported template syntax {word:?}: only env, toBool, toInt, toFloat and indent are supported"
    )
}

fn identifier(rest: &str) -> Result<(Token, usize), String> {
    let len = rest
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(rest.len(), |(i, _)| i);
    let word = &rest[..len];
    if UNSUPPORTED_KEYWORDS.contains(&word) {
        return Err(unsupported(word));
    }
    let token = match word {
        "true" => Token::Value(TValue::Bool(true)),
        "false" => Token::Value(TValue::Bool(false)),
        _ => Token::Ident(word.to_owned()),
    };
    Ok((token, len))
}

fn number_literal(rest: &str) -> Result<(Token, usize), String> {
    let len = rest
        .char_indices()
        .skip(1)
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
        .map_or(rest.len(), |(i, _)| i);
    let text = &rest[..len];
    if let Ok(int) = text.parse::<i64>() {
        return Ok((Token::Value(TValue::Int(int)), len));
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() => Ok((Token::Value(TValue::Float(float)), len)),
        _ => Err(format!("bad number syntax: {text:?}")),
    }
}

fn raw_string_literal(rest: &str) -> Result<(Token, usize), String> {
    let end = rest[1..]
        .find('`')
        .ok_or_else(|| "unterminated raw quoted string".to_owned())?;
    let text = rest[1..=end].to_owned();
    Ok((Token::Value(TValue::Str(text)), end + 2))
}

/// A Go interpreted string literal, escapes decoded.
fn string_literal(rest: &str) -> Result<(Token, usize), String> {
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Token::Value(TValue::Str(out)), i + 1)),
            '\\' => {
                let (_, escape) = chars.next().ok_or("unterminated quoted string")?;
                out.push(match escape {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'v' => '\u{b}',
                    '\\' | '"' | '\'' => escape,
                    'x' => hex_escape(&mut chars, 2)?,
                    'u' => hex_escape(&mut chars, 4)?,
                    'U' => hex_escape(&mut chars, 8)?,
                    other => return Err(format!("unknown escape sequence: \\{other}")),
                });
            }
            _ => out.push(c),
        }
    }
    Err("unterminated quoted string".to_owned())
}

fn hex_escape(
    chars: &mut impl Iterator<Item = (usize, char)>,
    digits: usize,
) -> Result<char, String> {
    let hex: String = chars.take(digits).map(|(_, c)| c).collect();
    u32::from_str_radix(&hex, 16)
        .ok()
        .filter(|_| hex.len() == digits)
        .and_then(char::from_u32)
        .ok_or_else(|| format!("invalid escape sequence in string: {hex:?}"))
}

/// One operand of a command.
#[derive(Debug, Clone)]
enum Operand {
    Func(String),
    Literal(TValue),
    Group(Vec<Command>),
}

impl Operand {
    fn describe(&self) -> String {
        match self {
            Operand::Func(name) => name.clone(),
            Operand::Literal(value) => format!("{value:?}"),
            Operand::Group(_) => "(...)".to_owned(),
        }
    }
}

/// `head arg arg ...`; a pipeline is `command | command ...`.
#[derive(Debug, Clone)]
struct Command {
    head: Operand,
    args: Vec<Operand>,
}

/// Recursive descent over the tokens of one action. Nesting is bounded by
/// the number of `(` in the action, itself bounded by the file size; cap
/// it anyway so a hostile file cannot overflow the stack.
struct ExprParser<'t> {
    tokens: &'t [Token],
    at: usize,
}

const MAX_GROUP_DEPTH: usize = 64;

impl ExprParser<'_> {
    fn pipeline(&mut self) -> Result<Vec<Command>, String> {
        self.pipeline_at(0)
    }

    fn pipeline_at(&mut self, depth: usize) -> Result<Vec<Command>, String> {
        if depth > MAX_GROUP_DEPTH {
            return Err("parentheses nested too deeply".to_owned());
        }
        let mut commands = vec![self.command(depth)?];
        while self.tokens.get(self.at) == Some(&Token::Pipe) {
            self.at += 1;
            commands.push(self.command(depth)?);
        }
        Ok(commands)
    }

    fn command(&mut self, depth: usize) -> Result<Command, String> {
        let head = self
            .operand(depth)?
            .ok_or_else(|| "missing value for command".to_owned())?;
        let mut args = Vec::new();
        while let Some(arg) = self.operand(depth)? {
            args.push(arg);
        }
        Ok(Command { head, args })
    }

    fn operand(&mut self, depth: usize) -> Result<Option<Operand>, String> {
        let operand = match self.tokens.get(self.at) {
            Some(Token::Ident(name)) => Operand::Func(name.clone()),
            Some(Token::Value(value)) => Operand::Literal(value.clone()),
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.pipeline_at(depth + 1)?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err("unclosed left paren".to_owned());
                }
                Operand::Group(inner)
            }
            Some(Token::Pipe | Token::Close) | None => return Ok(None),
        };
        self.at += 1;
        Ok(Some(operand))
    }
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(text: &str) -> Result<TValue, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(TValue::Bool(true)),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(TValue::Bool(false)),
        _ => Err(format!(
            "error calling toBool: strconv.ParseBool: parsing {}: invalid syntax",
            go_quote(text)
        )),
    }
}

/// Go's `strconv.Atoi` (64-bit `int`).
fn go_atoi(text: &str) -> Result<TValue, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let failure = |reason: &str| {
        format!(
            "error calling toInt: strconv.Atoi: parsing {}: {reason}",
            go_quote(text)
        )
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(failure("invalid syntax"));
    }
    text.parse::<i64>()
        .map(TValue::Int)
        .map_err(|_| failure("value out of range"))
}

/// Go's `strconv.ParseFloat(s, 64)`, decimal forms and `inf`/`nan`.
fn go_parse_float(text: &str) -> Result<TValue, String> {
    let failure = |reason: &str| {
        format!(
            "error calling toFloat: strconv.ParseFloat: parsing {}: {reason}",
            go_quote(text)
        )
    };
    let unsigned = text
        .strip_prefix(['+', '-'])
        .unwrap_or(text)
        .to_ascii_lowercase();
    let special = matches!(unsigned.as_str(), "inf" | "infinity" | "nan");
    let plain = !unsigned.is_empty()
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
    if !special && !plain {
        return Err(failure("invalid syntax"));
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_infinite() && !special => Err(failure("value out of range")),
        Ok(float) => Ok(TValue::Float(float)),
        Err(_) => Err(failure("invalid syntax")),
    }
}

/// Go's `%q` for the strings in strconv errors (close enough: JSON quoting).
fn go_quote(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Formats like Go's `fmt.Print(float64)`, i.e. `%g` with the shortest
/// precision: the fewest digits that round-trip, in exponent form (`1e+06`,
/// `1e-05`) when the decimal exponent is below -4 or at least 6.
fn go_format_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "1.5e-7".
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn render_with(text: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        render(text, &env_of(vars)).map(|r| r.text.into_owned())
    }

    #[test]
    fn text_without_actions_is_borrowed() {
        let rendered = render("a: b\n", &env_of(&[])).unwrap();
        assert!(matches!(rendered.text, Cow::Borrowed("a: b\n")));
        assert!(rendered.substitutions.is_empty());
    }

    #[test]
    fn substitutes_deck_variables_and_reports_them() {
        let text = "key: ${{ env \"DECK_KEY\" }}\nagain: ${{env \"DECK_KEY\"}}\nhost: ${{ env \"DECK_HOST\" }}\n";
        let env = env_of(&[("DECK_KEY", "s3cret"), ("DECK_HOST", "h")]);
        let rendered = render(text, &env).unwrap();
        assert_eq!(rendered.text, "key: s3cret\nagain: s3cret\nhost: h\n");
        assert_eq!(
            rendered.substitutions,
            vec![
                Substitution {
                    name: "DECK_KEY".into(),
                    value: "s3cret".into()
                },
                Substitution {
                    name: "DECK_HOST".into(),
                    value: "h".into()
                },
            ]
        );
    }

    #[test]
    fn rejects_variables_without_the_prefix() {
        let error =
            render_with("a: b\nk: ${{ env \"HOME\" }}\n", &[("HOME", "/root")]).unwrap_err();
        assert_eq!(
            error.message,
            "environment variables in the state file must be prefixed with 'DECK_', found: 'HOME'"
        );
        assert_eq!((error.line, error.column), (2, 4));
    }

    #[test]
    fn rejects_unset_variables() {
        let error = render_with("ü: ${{ env \"DECK_X\" }}", &[]).unwrap_err();
        assert_eq!(
            error.message,
            "environment variable 'DECK_X' present in state file but not set"
        );
        assert_eq!((error.line, error.column), (1, 4));
        assert_eq!(
            error.to_string(),
            "environment variable 'DECK_X' present in state file but not set at line 1, column 4"
        );
    }

    #[test]
    fn render_all_reports_every_unset_variable_once() {
        let text = "a: ${{ env \"DECK_X\" }}\nb: ${{ env \"DECK_X\" | toInt }}\nc: ${{ env \"X\" }}\nd: ${{ env \"DECK_SET\" }}\n";
        let errors = render_all(text, &env_of(&[("DECK_SET", "1")])).unwrap_err();
        let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "environment variable 'DECK_X' present in state file but not set at line 1, column 4",
                "environment variables in the state file must be prefixed with 'DECK_', found: 'X' at line 3, column 4",
            ]
        );
        // Other errors still stop at once.
        let errors =
            render_all("a: ${{ env \"DECK_X\" }}\nb: ${{ nope }}\n", &env_of(&[])).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(
            errors[1].message.contains("\"nope\" not defined"),
            "{errors:?}"
        );
    }

    #[test]
    fn converts_with_to_bool_to_int_and_to_float() {
        let vars = [
            ("DECK_B", "T"),
            ("DECK_N", "0042"),
            ("DECK_F", "1.50"),
            ("DECK_BIG", "1000000"),
        ];
        let text = "${{ env \"DECK_B\" | toBool }} ${{ env \"DECK_N\" | toInt }} ${{ toFloat (env \"DECK_F\") }} ${{ env \"DECK_BIG\" | toFloat }}";
        assert_eq!(render_with(text, &vars).unwrap(), "true 42 1.5 1e+06");
    }

    #[test]
    fn conversion_errors_use_go_messages() {
        let error = render_with("${{ env \"DECK_N\" | toInt }}", &[("DECK_N", "4.2")]).unwrap_err();
        assert_eq!(
            error.message,
            "error calling toInt: strconv.Atoi: parsing \"4.2\": invalid syntax"
        );
        let error =
            render_with("${{ env \"DECK_B\" | toBool }}", &[("DECK_B", "yes")]).unwrap_err();
        assert!(
            error.message.contains("strconv.ParseBool"),
            "{}",
            error.message
        );
        let error =
            render_with("${{ env \"DECK_F\" | toFloat }}", &[("DECK_F", "1e999")]).unwrap_err();
        assert!(
            error.message.ends_with("value out of range"),
            "{}",
            error.message
        );
    }

    #[test]
    fn indent_pads_continuation_lines() {
        let vars = [("DECK_CERT", "-----BEGIN-----\nabc\n-----END-----")];
        let text = "cert: |\n  ${{ env \"DECK_CERT\" | indent 2 }}\n";
        assert_eq!(
            render_with(text, &vars).unwrap(),
            "cert: |\n  -----BEGIN-----\n  abc\n  -----END-----\n"
        );
        assert!(render_with("${{ indent 1000000000000 \"a\\nb\" }}", &vars).is_err());
        let error = render_with("${{ indent 2 }}", &vars).unwrap_err();
        assert_eq!(
            error.message,
            "wrong number of args for indent: want 2 got 1"
        );
    }

    #[test]
    fn trims_whitespace_around_trim_markers() {
        let vars = [("DECK_A", "x")];
        assert_eq!(
            render_with("a  \n ${{- env \"DECK_A\" -}} \n b", &vars).unwrap(),
            "axb"
        );
        // A dash without a space is not a trim marker.
        let error = render_with("${{-env \"DECK_A\"}}", &vars).unwrap_err();
        assert!(error.message.contains("bad number"), "{}", error.message);
    }

    #[test]
    fn comments_render_nothing() {
        assert_eq!(render_with("a${{/* note */}}b", &[]).unwrap(), "ab");
        assert_eq!(render_with("a ${{- /* note */ -}} b", &[]).unwrap(), "ab");
    }

    #[test]
    fn strings_may_contain_the_closing_delimiter_and_escapes() {
        let vars = [("DECK_}}", "odd"), ("DECK_\t", "tab")];
        assert!(render_with("${{ env \"DECK_}}\" }}", &vars).is_ok());
        assert_eq!(
            render_with("${{ env \"DECK_\\t\" }}", &vars).unwrap(),
            "tab"
        );
        assert_eq!(render_with("${{ env `DECK_}}` }}", &vars).unwrap(), "odd");
    }

    #[test]
    fn reports_malformed_actions() {
        let cases = [
            ("a: ${{ env \"DECK_A\"\n", "unclosed action"),
            ("${{ }}", "missing value for command"),
            ("${{ nope \"x\" }}", "function \"nope\" not defined"),
            ("${{ if true }}x${{ end }}", "unsupported"),
            ("${{ .Values }}", "unsupported"),
            ("${{ $x := 1 }}", "unsupported"),
            (
                "${{ env \"DECK_A\" \"extra\" }}",
                "wrong number of args for env",
            ),
            ("${{ env 5 }}", "wrong type"),
            ("${{ \"x\" \"y\" }}", "can't give argument"),
            ("${{ (env \"DECK_A\" }}", "unclosed left paren"),
            ("${{ env \"DECK_A\" ) }}", "unexpected ')'"),
            ("${{ env \"DECK_\\q\" }}", "unknown escape"),
            ("${{ env \"unterminated }}", "unclosed action"),
            ("${{ env \"DECK_A\n }}", "unterminated quoted string"),
            ("${{/* open }}", "comment ends"),
        ];
        for (text, expected) in cases {
            let error = render_with(text, &[("DECK_A", "a")]).unwrap_err();
            assert!(
                error.message.contains(expected),
                "{text:?}: {}",
                error.message
            );
        }
    }

    #[test]
    fn deep_parentheses_are_an_error_not_a_crash() {
        let text = format!(
            "${{{{ {}env \"DECK_A\"{} }}}}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let error = render_with(&text, &[("DECK_A", "a")]).unwrap_err();
        assert!(
            error.message.contains("nested too deeply"),
            "{}",
            error.message
        );
    }

    #[test]
    fn literals_and_groups_render() {
        assert_eq!(
            render_with("${{ \"lit\" }}-${{ 7 }}-${{ true }}", &[]).unwrap(),
            "lit-7-true"
        );
        assert_eq!(render_with("${{ (toInt \"12\") }}", &[]).unwrap(), "12");
    }

    #[test]
    fn formats_floats_like_go() {
        let cases = [
            (1.5, "1.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-10, "-2.5e-10"),
            (0.0, "0"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_format_float(value), expected, "{value}");
        }
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncä${{", 6), (2, 3));
        assert_eq!(line_column("", 0), (1, 1));
    }

    #[test]
    fn process_env_reads_the_environment() {
        // PATH is set in any test environment; nothing is modified.
        assert!(ProcessEnv.lookup("PATH").is_some());
    }

    mod fuzz {
        use super::super::render;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn arbitrary_template_text_never_panics(
                text in "(\\$\\{\\{-? |[ a-zA-Z_0-9\"`'|()\\\\\n-]|}}| -}}|/\\*|\\*/|env|toInt|indent|é){0,40}"
            ) {
                let env = |name: &str| name.starts_with("DECK_").then(|| "1\n2".to_owned());
                let _ = render(&text, &env);
            }
        }
    }
}
