//! Minimal UTC calendar arithmetic: RFC 3339 timestamps for `lastmodified`
//! and `age-keygen`'s `# created:` line, and the YAML timestamp forms that
//! sops (through go-yaml v3) turns into `type:time` values.
//!
//! No global state; the clock is read only by [`now_rfc3339`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn format_unix_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The current time as RFC 3339 in UTC, whole seconds (sops' `lastmodified`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_unix_utc(secs)
}

/// Parses a YAML timestamp the way go-yaml v3 does for plain scalars, and
/// returns it formatted as Go's `time.RFC3339Nano`, which is how sops
/// encrypts, hashes and prints `type:time` values.
///
/// Accepted (Go layouts): `2006-1-2T15:4:5.999999999Z07:00` (also with a
/// lowercase `t`), `2006-1-2 15:4:5.999999999` (UTC) and `2006-1-2` (UTC).
pub(crate) fn parse_yaml_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    // Quick check like go-yaml: four digits and a dash.
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let mut p = Cursor { b, i: 5 };
    let year: i64 = s[..4].parse().ok()?;
    let month = p.num(1, 2)?;
    p.expect(b'-')?;
    let day = p.num(1, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_only = p.i == b.len();
    let (mut hour, mut min, mut sec, mut nanos, mut offset) = (0, 0, 0, 0u32, Some(0i32));
    if !date_only {
        let sep = p.next()?;
        let zoned = match sep {
            b'T' | b't' => true,
            b' ' => false,
            _ => return None,
        };
        hour = p.num(1, 2)?;
        p.expect(b':')?;
        min = p.num(1, 2)?;
        p.expect(b':')?;
        sec = p.num(1, 2)?;
        if p.peek() == Some(b'.') {
            p.i += 1;
            let start = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            let digits = &s[start..p.i];
            if digits.is_empty() || digits.len() > 9 {
                return None;
            }
            nanos = format!("{digits:0<9}").parse().ok()?;
        }
        if zoned {
            match p.next()? {
                b'Z' => offset = Some(0),
                c @ (b'+' | b'-') => {
                    let h = p.num(2, 2)? as i32;
                    p.expect(b':')?;
                    let m = p.num(2, 2)? as i32;
                    if h > 23 || m > 59 {
                        return None;
                    }
                    let o = h * 3600 + m * 60;
                    offset = Some(if c == b'-' { -o } else { o });
                }
                _ => return None,
            }
        } else {
            offset = Some(0);
        }
        if p.i != b.len() || hour > 23 || min > 59 || sec > 59 {
            return None;
        }
    }
    let offset = offset?;
    let mut out = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{min:02}:{sec:02}");
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.abs();
        out.push_str(&format!("{sign}{:02}:{:02}", o / 3600, (o % 3600) / 60));
    }
    // Validate the day count round-trips (guards the arithmetic above).
    let days = days_from_civil(year, month, day);
    (civil_from_days(days) == (year, month, day)).then_some(out)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i - start < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_and_leap_day_format_as_rfc3339() {
        assert_eq!(format_unix_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_unix_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn yaml_timestamps_normalize_like_go_rfc3339nano() {
        let cases = [
            ("2024-01-02", Some("2024-01-02T00:00:00Z")),
            ("2024-1-2", Some("2024-01-02T00:00:00Z")),
            ("2024-01-02T03:04:05Z", Some("2024-01-02T03:04:05Z")),
            (
                "2024-01-02t03:04:05.500+02:00",
                Some("2024-01-02T03:04:05.5+02:00"),
            ),
            ("2024-01-02 03:04:05", Some("2024-01-02T03:04:05Z")),
            ("2024-01-02T03:04:05+00:00", Some("2024-01-02T03:04:05Z")),
            ("2024-02-30", None),
            ("2024-13-01", None),
            ("20240-01-01", None),
            ("2024-01-02T03:04:05", None),
            ("2024-01-02x", None),
            ("hello", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_yaml_timestamp(input).as_deref(), want, "{input}");
        }
    }
}
