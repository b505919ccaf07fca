//! Log lines as Cloud Logging reads them (`LOG_FORMAT=json`): one JSON object per line on
//! stdout, with `severity` (DEBUG, INFO, WARNING, ERROR), `message`, `time` and the logger's
//! name. A lifecycle line (`drain_end after_ms=10012 closes_sent=3 …`, see
//! [`EventLine`](crate::app::lifecycle::EventLine)) also gets its event and each of its fields
//! as JSON fields, numbers as numbers, so a log-based metric or alert can read them by name.
//! Text that is not a lifecycle line (per-connection detail at debug) is the message alone.
//!
//! On GKE a line that is not JSON is read as severity INFO (ERROR on stderr): with the text
//! format every warning and error looks like INFO and an alert on severity never fires.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::app::context::json_string;

/// The logger behind `LOG_FORMAT=json`.
#[derive(Debug)]
pub struct JsonLogger {
    level: log::LevelFilter,
}

impl JsonLogger {
    /// Installs it as the process's logger, at `level`.
    pub fn init(level: log::LevelFilter) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(JsonLogger { level }))?;
        log::set_max_level(level);
        Ok(())
    }
}

impl log::Log for JsonLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = json_line(
            record.level(),
            record.target(),
            &record.args().to_string(),
            SystemTime::now(),
        );
        // One write per line, so lines never interleave.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Cloud Logging's name for a level.
pub fn severity(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    }
}

/// One log line as a JSON object, newline included.
pub fn json_line(level: log::Level, target: &str, message: &str, at: SystemTime) -> String {
    let mut out = String::with_capacity(message.len() * 2 + 96);
    out.push_str("{\"severity\":\"");
    out.push_str(severity(level));
    out.push_str("\",\"time\":\"");
    out.push_str(&rfc3339_millis(at));
    out.push_str("\",\"logger\":");
    out.push_str(&json_string(target));
    out.push_str(",\"message\":");
    out.push_str(&json_string(message));
    if let Some((event, fields)) = lifecycle_fields(message) {
        out.push_str(",\"event\":");
        out.push_str(&json_string(event));
        for (key, value) in fields {
            out.push(',');
            let key = if RESERVED.contains(&key) {
                format!("field_{key}")
            } else {
                key.to_string()
            };
            out.push_str(&json_string(&key));
            out.push(':');
            out.push_str(&json_value(&value));
        }
    }
    out.push_str("}\n");
    out
}

/// Names the line itself uses: a field of the same name is written as `field_<name>`.
const RESERVED: [&str; 5] = ["severity", "time", "logger", "message", "event"];

/// A lifecycle line's event and fields (`event key=value key="quoted value" …`), or `None` for
/// other text. Values are unquoted as [`EventLine`](crate::app::lifecycle::EventLine) quoted
/// them (Rust's string escapes).
fn lifecycle_fields(message: &str) -> Option<(&str, Vec<(&str, String)>)> {
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    let key_ok =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let (event, mut rest) = message.split_once(' ').unwrap_or((message, ""));
    if !word(event) {
        return None;
    }
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        if !key_ok(key) {
            return None;
        }
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let (value, used) = unquote(quoted)?;
            (value, &quoted[used..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        fields.push((key, value));
        rest = match after.strip_prefix(' ') {
            Some(next) => next,
            None if after.is_empty() => after,
            None => return None,
        };
    }
    Some((event, fields))
}

/// The text of a Rust string literal's body up to its closing quote, and the bytes used.
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    let (open, brace) = chars.next()?;
                    let close = s[open..].find('}')? + open;
                    if brace != '{' {
                        return None;
                    }
                    let code = u32::from_str_radix(&s[open + 1..close], 16).ok()?;
                    out.push(char::from_u32(code)?);
                    while chars.next().is_some_and(|(j, _)| j < close) {}
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// A field's value as JSON: a whole number or a boolean as itself, anything else a string.
fn json_value(value: &str) -> String {
    let number = value.parse::<i64>().is_ok() || value.parse::<u64>().is_ok();
    if number || value == "true" || value == "false" {
        value.to_string()
    } else {
        json_string(value)
    }
}

/// `at` as RFC 3339 in UTC with milliseconds, e.g. `2026-12-06T09:03:26.123Z`.
fn rfc3339_millis(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3_600,
        day_secs % 3_600 / 60,
        day_secs % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::lifecycle::EventLine;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn every_level_has_cloud_loggings_name() {
        for (level, name) in [
            (log::Level::Error, "ERROR"),
            (log::Level::Warn, "WARNING"),
            (log::Level::Info, "INFO"),
            (log::Level::Debug, "DEBUG"),
            (log::Level::Trace, "DEBUG"),
        ] {
            let line = json_line(level, "wsdrain", "x", at(0, 0));
            assert!(
                line.starts_with(&format!("{{\"severity\":\"{name}\",")),
                "{line}"
            );
        }
    }

    #[test]
    fn a_lifecycle_lines_fields_become_json_fields() {
        let message = EventLine::new("drain_end")
            .field("after_ms", 10_012)
            .field("clean", 3)
            .field("ready", false)
            .field("error", "Address in use (os error 98)")
            .field("dir", "a \"b\"\\c\n")
            .field("message", "clash")
            .to_string();
        let line = json_line(
            log::Level::Warn,
            "wsdrain::server::drain",
            &message,
            at(1_796_000_000, 7),
        );
        assert_eq!(
            line,
            format!(
                "{{\"severity\":\"WARNING\",\"time\":\"2026-11-30T00:53:20.007Z\",\
                 \"logger\":\"wsdrain::server::drain\",\"message\":{},\"event\":\"drain_end\",\
                 \"after_ms\":10012,\"clean\":3,\"ready\":false,\
                 \"error\":\"Address in use (os error 98)\",\"dir\":\"a \\\"b\\\"\\\\c\\u000a\",\
                 \"field_message\":\"clash\"}}\n",
                json_string(&message)
            )
        );
    }

    #[test]
    fn prose_is_the_message_alone() {
        for prose in [
            "conn #12: closed",
            "public port full (3): answered 503",
            "cannot register a connection: Bad file descriptor",
            "",
        ] {
            let line = json_line(log::Level::Debug, "t", prose, at(0, 0));
            assert!(!line.contains("\"event\""), "{line}");
            assert!(line.contains(&format!("\"message\":{}", json_string(prose))));
        }
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339_millis(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(at(951_782_400, 999)),
            "2000-02-29T00:00:00.999Z"
        );
        assert_eq!(
            rfc3339_millis(at(4_102_444_799, 1)),
            "2099-12-31T23:59:59.001Z"
        );
    }
}
