//! Timestamps as text: RFC 3339 in UTC, exactly as chrono writes them, but written straight
//! into a small buffer. chrono writes through `fmt`, a character at a time, and serde_json
//! escapes each character as it comes: a record's timestamps then cost more to encode than all
//! its other fields together (about 2,400 instructions each, measured with callgrind).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

/// The longest text [`write`] makes: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;

/// How many digits of the second's fraction are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fraction {
    /// None, 3, 6 or 9: as few as say it exactly (chrono's `SecondsFormat::AutoSi`, which its
    /// serde encoding uses).
    Auto,
    /// Always 6 (`SecondsFormat::Micros`).
    Micros,
}

/// Serializes `at` as chrono's serde encoding does, to the same text.
pub(crate) fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0; LONGEST];
    match write(at, Fraction::Auto, &mut text) {
        Some(text) => serializer.serialize_str(text),
        None => at.serialize(serializer),
    }
}

/// [`serialize`] for an optional timestamp: `null` when absent.
pub(crate) fn serialize_optional<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// `at` as `at.to_rfc3339_opts(SecondsFormat::Micros, true)` writes it.
pub(crate) fn micros(at: &DateTime<Utc>) -> String {
    let mut text = [0; LONGEST];
    match write(at, Fraction::Micros, &mut text) {
        Some(text) => text.to_owned(),
        None => at.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// Writes `at` into `out` and returns the text; `None` for a year outside 0 to 9999, which
/// chrono writes with a sign and as many digits as it takes.
fn write<'a>(at: &DateTime<Utc>, fraction: Fraction, out: &'a mut [u8; LONGEST]) -> Option<&'a str> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    // A leap second is held as a nanosecond count past one second; chrono writes it as second
    // 60 with the remainder.
    let (second, nano) = match at.nanosecond() {
        nano @ 1_000_000_000.. => (at.second() + 1, nano - 1_000_000_000),
        nano => (at.second(), nano),
    };
    let (fraction, places) = match fraction {
        Fraction::Micros => (nano / 1_000, 6),
        Fraction::Auto if nano == 0 => (0, 0),
        Fraction::Auto if nano % 1_000_000 == 0 => (nano / 1_000_000, 3),
        Fraction::Auto if nano % 1_000 == 0 => (nano / 1_000, 6),
        Fraction::Auto => (nano, 9),
    };
    let mut text = Cursor { out, len: 0 };
    text.number(year, 4, b'-');
    text.number(at.month(), 2, b'-');
    text.number(at.day(), 2, b'T');
    text.number(at.hour(), 2, b':');
    text.number(at.minute(), 2, b':');
    if places == 0 {
        text.number(second, 2, b'Z');
    } else {
        text.number(second, 2, b'.');
        text.number(fraction, places, b'Z');
    }
    let Cursor { out, len } = text;
    // Only ASCII digits and separators were written.
    std::str::from_utf8(&out[..len]).ok()
}

/// Where [`write`] is in its buffer.
struct Cursor<'a> {
    out: &'a mut [u8; LONGEST],
    len: usize,
}

impl Cursor<'_> {
    /// Writes `value` as `places` digits, zero-padded, then `separator`.
    fn number(&mut self, value: u32, places: u32, separator: u8) {
        for place in (0..places).rev() {
            // A digit: below 10.
            self.out[self.len] = b'0' + (value / 10u32.pow(place) % 10) as u8;
            self.len += 1;
        }
        self.out[self.len] = separator;
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    /// Times across the range chrono writes plainly, with every kind of fraction, a leap
    /// second, and years it writes with a sign.
    fn times() -> Vec<DateTime<Utc>> {
        let mut times = Vec::new();
        let nanos = [0, 1, 999, 1_000, 1_000_000, 123_456_000, 123_000_000, 999_999_999, 120_000_007];
        for (year, month, day) in [(0, 1, 1), (1, 2, 3), (999, 12, 31), (1970, 1, 1), (2026, 12, 4), (9999, 12, 31)] {
            for (hour, minute, second) in [(0, 0, 0), (9, 5, 7), (23, 59, 59)] {
                for nano in nanos {
                    let date = NaiveDate::from_ymd_opt(year, month, day).expect("a date");
                    times.push(
                        Utc.from_utc_datetime(&date.and_hms_nano_opt(hour, minute, second, nano).expect("a time")),
                    );
                }
            }
        }
        let leap =
            NaiveDate::from_ymd_opt(2016, 12, 31).and_then(|date| date.and_hms_nano_opt(23, 59, 59, 1_250_000_000));
        times.push(Utc.from_utc_datetime(&leap.expect("a leap second")));
        for year in [-1, -10_000, 10_000, 200_000] {
            let date = NaiveDate::from_ymd_opt(year, 6, 15).expect("a date");
            times.push(Utc.from_utc_datetime(&date.and_hms_micro_opt(12, 30, 0, 5).expect("a time")));
        }
        // And many ordinary ones, from a fixed sequence.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let seconds = (seed % 253_402_300_799) as i64;
            let nano = (seed >> 20) as u32 % 1_000_000_000;
            let nano = [nano, nano / 1_000 * 1_000, nano / 1_000_000 * 1_000_000][(seed % 3) as usize];
            times.push(Utc.timestamp_opt(seconds, nano).single().expect("a time in range"));
        }
        times
    }

    #[test]
    fn timestamps_serialize_to_chronos_own_text() {
        #[derive(Serialize)]
        struct Ours<'a>(#[serde(serialize_with = "serialize")] &'a DateTime<Utc>);
        for at in times() {
            let ours = serde_json::to_string(&Ours(&at)).expect("encodes");
            assert_eq!(ours, serde_json::to_string(&at).expect("encodes"), "{at:?}");
        }
    }

    #[test]
    fn optional_timestamps_serialize_as_chronos_or_null() {
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "serialize_optional")] Option<DateTime<Utc>>);
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 11, 0, 0).single();
        assert_eq!(serde_json::to_string(&Ours(at)).unwrap(), serde_json::to_string(&at).unwrap());
        assert_eq!(serde_json::to_string(&Ours(None)).unwrap(), "null");
    }

    #[test]
    fn micros_are_chronos_rfc3339_with_microseconds() {
        for at in times() {
            assert_eq!(micros(&at), at.to_rfc3339_opts(SecondsFormat::Micros, true), "{at:?}");
        }
    }
}
