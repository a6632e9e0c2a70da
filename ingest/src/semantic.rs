//! Conversions of Debezium's semantic values into the integers Arrow stores:
//! ISO-8601 zoned timestamps and times, Debezium's stand-ins for
//! PostgreSQL's infinite dates and timestamps, and big-endian
//! two's-complement decimals. Pure functions; every malformed input is an
//! error, never a panic.
//!
//! Iceberg has no infinite date or timestamp and no time of day past
//! 23:59:59.999999. floe stores PostgreSQL's `infinity` and `-infinity` as
//! the values DuckDB uses for them (the largest and the negated largest
//! 32-bit day and 64-bit microsecond counts; DuckDB reads them back as
//! `infinity`), and `24:00:00` as 23:59:59.999999, the last time Iceberg
//! can hold. `docs/types.md` lists what each reader sees.

/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `timestamp 'infinity'` / `'-infinity'`, in microseconds.
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
pub const TIMESTAMP_NEG_INFINITY: i64 = -i64::MAX;

/// `date 'infinity'` / `'-infinity'`, in days.
pub const DATE_INFINITY: i32 = i32::MAX;
pub const DATE_NEG_INFINITY: i32 = -i32::MAX;

/// The last microsecond of a day: where `time '24:00:00'` is stored.
pub const LAST_TIME_OF_DAY: i64 = MICROS_PER_DAY - 1;

/// What Debezium's Postgres connector (3.x) sends for infinite timestamps
/// (`timestamp`, `timestamp(p)`): the JDBC driver's infinity markers,
/// `PGStatement.DATE_POSITIVE_INFINITY` and `DATE_NEGATIVE_INFINITY`, taken
/// as microseconds (for `timestamp(0..3)` the same, divided by 1000).
const DEBEZIUM_TIMESTAMP_INFINITY: i64 = 9_223_372_036_825_200_000;
const DEBEZIUM_TIMESTAMP_NEG_INFINITY: i64 = -9_223_372_036_832_400_000;

/// What Debezium's Postgres connector (3.x) sends for infinite dates: one
/// pair of day counts from snapshot reads and arrays, another from
/// streamed changes (recorded in tests/fixtures/types).
const DEBEZIUM_DATE_INFINITY: [i32; 2] = [-622_191_234, -2_147_472_692];
const DEBEZIUM_DATE_NEG_INFINITY: [i32; 2] = [-625_821_272, -2_147_472_691];

/// The earliest timestamp PostgreSQL holds, 4713-01-01 00:00:00 BC
/// (proleptic Gregorian), in microseconds. An earlier value from the
/// Postgres connector is not a PostgreSQL timestamp: Debezium overflowed
/// converting one past 294247 AD, which Iceberg cannot hold.
const POSTGRES_MIN_TIMESTAMP_MICROS: i64 = -210_863_520_000_000_000;

/// Why a timestamp from Debezium cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// Not a timestamp at all (bad text).
    Malformed,
    /// A real timestamp, but outside what Iceberg (microseconds in 64 bits,
    /// up to 294247-01-10) or PostgreSQL can hold.
    OutOfRange,
}

/// A day count from Debezium's Postgres connector, with its infinity
/// markers mapped to [`DATE_INFINITY`] and [`DATE_NEG_INFINITY`].
#[inline]
pub fn debezium_date(days: i32) -> i32 {
    if DEBEZIUM_DATE_INFINITY.contains(&days) {
        DATE_INFINITY
    } else if DEBEZIUM_DATE_NEG_INFINITY.contains(&days) {
        DATE_NEG_INFINITY
    } else {
        days
    }
}

/// A timestamp from Debezium's Postgres connector, given as the value sent
/// (`raw`, in the column's unit) and that value in microseconds (`None`
/// when the conversion overflowed), with the infinity markers mapped to
/// [`TIMESTAMP_INFINITY`] and [`TIMESTAMP_NEG_INFINITY`].
#[inline]
pub fn debezium_timestamp(raw: i64, micros: Option<i64>) -> Result<i64, TimestampError> {
    // the markers may come in the column's own unit or already in micros
    for v in [Some(raw), micros].into_iter().flatten() {
        if v == DEBEZIUM_TIMESTAMP_INFINITY {
            return Ok(TIMESTAMP_INFINITY);
        }
        if v == DEBEZIUM_TIMESTAMP_NEG_INFINITY {
            return Ok(TIMESTAMP_NEG_INFINITY);
        }
    }
    match micros {
        Some(v) if v >= POSTGRES_MIN_TIMESTAMP_MICROS => Ok(v),
        _ => Err(TimestampError::OutOfRange),
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Howard Hinnant's algorithm: shift the year to start in March so the
    // leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let end = self.i.checked_add(n)?;
        let chunk = self.s.get(self.i..end)?;
        let mut v = 0u32;
        for &c in chunk {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i = end;
        Some(v)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.s.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// `HH:MM:SS[.fraction]` as microseconds of the day; a fraction finer
    /// than microseconds must be zero there, since floe stores microseconds.
    fn time_of_day(&mut self) -> Option<i64> {
        let h = self.digits(2)?;
        self.eat(b':')?;
        let m = self.digits(2)?;
        self.eat(b':')?;
        let sec = self.digits(2)?;
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        let mut micros = 0i64;
        if self.eat(b'.').is_some() {
            let mut n = 0;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                let d = i64::from(c - b'0');
                if n < 6 {
                    micros = micros * 10 + d;
                } else if d != 0 {
                    return None;
                }
                n += 1;
                self.i += 1;
            }
            if n == 0 || n > 9 {
                return None;
            }
            for _ in n..6 {
                micros *= 10;
            }
        }
        Some(((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(sec)) * 1_000_000 + micros)
    }

    /// `Z` or `±HH:MM[:SS]` (also `±HHMM`, `±HH`) as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        match self.peek()? {
            b'Z' | b'z' => {
                self.i += 1;
                Some(0)
            }
            sign @ (b'+' | b'-') => {
                self.i += 1;
                let h = i64::from(self.digits(2)?);
                let mut m = 0;
                let mut s = 0;
                if self.peek().is_some() {
                    self.eat(b':');
                    m = i64::from(self.digits(2)?);
                    if self.eat(b':').is_some() {
                        s = i64::from(self.digits(2)?);
                    }
                }
                if h > 18 || m > 59 || s > 59 {
                    return None;
                }
                let secs = h * 3600 + m * 60 + s;
                Some(if sign == b'-' { -secs } else { secs })
            }
            _ => None,
        }
    }

    fn at_end(&self) -> bool {
        self.i == self.s.len()
    }
}

/// Parses an `io.debezium.time.ZonedTimestamp` (ISO-8601 with an offset,
/// e.g. `2024-02-29T08:15:10.654321Z`, or `infinity` / `-infinity`) into
/// microseconds since the epoch, UTC.
pub fn parse_zoned_timestamp(text: &str) -> Result<i64, TimestampError> {
    match text {
        "infinity" => return Ok(TIMESTAMP_INFINITY),
        "-infinity" => return Ok(TIMESTAMP_NEG_INFINITY),
        _ => {}
    }
    let (days, time, offset) = scan_zoned_timestamp(text).ok_or(TimestampError::Malformed)?;
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|v| v.checked_add(time))
        .and_then(|v| v.checked_sub(offset * 1_000_000))
        // the infinity encodings are not timestamps
        .filter(|v| *v != TIMESTAMP_INFINITY && *v > TIMESTAMP_NEG_INFINITY)
        .ok_or(TimestampError::OutOfRange)
}

/// The day, time of day (µs) and offset (s) of a zoned timestamp's text.
fn scan_zoned_timestamp(text: &str) -> Option<(i64, i64, i64)> {
    let mut s = Scan {
        s: text.as_bytes(),
        i: 0,
    };
    let negative_year = s.eat(b'-').is_some();
    if !negative_year {
        s.eat(b'+');
    }
    // four-digit years, or more for years past 9999
    let start = s.i;
    while matches!(s.peek(), Some(b'0'..=b'9')) {
        s.i += 1;
    }
    let year_digits = s.i - start;
    if !(4..=6).contains(&year_digits) {
        return None;
    }
    s.i = start;
    let mut year = i64::from(s.digits(year_digits)?);
    if negative_year {
        year = -year;
    }
    s.eat(b'-')?;
    let month = s.digits(2)?;
    s.eat(b'-')?;
    let day = s.digits(2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    match s.peek()? {
        b'T' | b't' | b' ' => s.i += 1,
        _ => return None,
    }
    let time = s.time_of_day()?;
    let offset = s.offset()?;
    if !s.at_end() {
        return None;
    }
    Some((days_from_civil(year, month, day), time, offset))
}

/// Parses an `io.debezium.time.ZonedTime` (e.g. `11:45:10.5Z`) into
/// microseconds past midnight UTC.
pub fn parse_zoned_time(text: &str) -> Option<i64> {
    let mut s = Scan {
        s: text.as_bytes(),
        i: 0,
    };
    let time = s.time_of_day()?;
    let offset = s.offset()?;
    if !s.at_end() {
        return None;
    }
    Some((time - offset * 1_000_000).rem_euclid(MICROS_PER_DAY))
}

/// The text of a `bit(length)` value from Debezium's `io.debezium.data.Bits`
/// bytes (Java's `BitSet.toByteArray`: little-endian, bit 0 is the last
/// character, trailing zero bytes dropped), or None when a bit past
/// `length` is set.
pub fn bit_string(bytes: &[u8], length: usize) -> Option<String> {
    let bit = |i: usize| bytes.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
    if (length..bytes.len() * 8).any(bit) {
        return None;
    }
    Some(
        (0..length)
            .rev()
            .map(|i| if bit(i) { '1' } else { '0' })
            .collect(),
    )
}

/// A big-endian two's-complement integer (Avro's decimal encoding) as i128,
/// or None when it does not fit in 128 bits.
#[inline]
pub fn i128_from_be_bytes(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() {
        return Some(0);
    }
    if bytes.len() <= 8 {
        // the common case (up to 18 digits): sign-extend through i64
        let mut buf = if bytes[0] & 0x80 != 0 {
            [0xff; 8]
        } else {
            [0; 8]
        };
        buf[8 - bytes.len()..].copy_from_slice(bytes);
        return Some(i128::from(i64::from_be_bytes(buf)));
    }
    let negative = bytes[0] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    let (extra, rest) = bytes.split_at(bytes.len().saturating_sub(16));
    // Longer than 16 bytes is fine only if the extra bytes are sign extension.
    if extra.iter().any(|&b| b != fill) || (!extra.is_empty() && (rest[0] & 0x80 != 0) != negative)
    {
        return None;
    }
    let mut buf = [fill; 16];
    buf[16 - rest.len()..].copy_from_slice(rest);
    Some(i128::from_be_bytes(buf))
}

/// 10^precision for precision 1..=38, the exclusive bound of a decimal's
/// unscaled value.
#[inline]
pub fn decimal_bound(precision: u8) -> i128 {
    const POWERS: [i128; 39] = {
        let mut p = [1i128; 39];
        let mut i = 1;
        while i < 39 {
            p[i] = p[i - 1] * 10;
            i += 1;
        }
        p
    };
    POWERS[precision.min(38) as usize]
}

/// Formats an arbitrarily long big-endian two's-complement unscaled value
/// with the given scale as exact decimal text (`-12.3400`). Used for
/// `VariableScaleDecimal`, whose values may exceed 128 bits.
pub fn format_decimal(unscaled_be: &[u8], scale: i32) -> String {
    let negative = unscaled_be.first().is_some_and(|b| b & 0x80 != 0);
    // magnitude as big-endian bytes
    let mut mag: Vec<u8> = if negative {
        // two's complement negate: invert and add one
        let mut m: Vec<u8> = unscaled_be.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        unscaled_be.to_vec()
    };
    // repeated division by 10^9 of the big-endian magnitude
    let mut chunks: Vec<u32> = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem: u64 = 0;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u64::from(*b);
            *b = (cur / 1_000_000_000) as u8;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        while mag.first() == Some(&0) {
            mag.remove(0);
        }
    }
    let mut digits = String::new();
    for (i, c) in chunks.iter().rev().enumerate() {
        if i == 0 {
            digits.push_str(&c.to_string());
        } else {
            digits.push_str(&format!("{c:09}"));
        }
    }
    if digits.is_empty() {
        digits.push('0');
    }
    let mut out = String::with_capacity(digits.len() + 3);
    if negative {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(&digits);
        if digits != "0" {
            out.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        }
        return out;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1960, 1, 1), -3_653);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn zoned_timestamps() {
        assert_eq!(parse_zoned_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_zoned_timestamp("2024-02-29T08:15:10.654321Z"),
            Ok(1_709_194_510_654_321)
        );
        assert_eq!(
            parse_zoned_timestamp("2024-02-29T13:45:10.654321+05:30"),
            Ok(1_709_194_510_654_321)
        );
        assert_eq!(parse_zoned_timestamp("1969-12-31T23:59:59.999999Z"), Ok(-1));
        assert_eq!(parse_zoned_timestamp("1970-01-01T00:00:00.5Z"), Ok(500_000));
        assert_eq!(
            parse_zoned_timestamp("1970-01-01T00:00:00.123456000Z"),
            Ok(123_456)
        );
        // PostgreSQL's infinities, as DuckDB stores them
        assert_eq!(parse_zoned_timestamp("infinity"), Ok(i64::MAX));
        assert_eq!(parse_zoned_timestamp("-infinity"), Ok(-i64::MAX));
        // BC years in ISO-8601's astronomical numbering: 4713 BC is -4712
        assert_eq!(
            parse_zoned_timestamp("-4712-01-01T00:00:00.000000Z"),
            Ok(-210_863_520_000_000_000)
        );
        // PostgreSQL's last timestamp is past what 64-bit microseconds hold
        assert_eq!(
            parse_zoned_timestamp("+294276-12-31T23:59:59.999999Z"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_zoned_timestamp("+294246-12-31T23:59:59.999999Z"),
            Ok(9_223_371_244_799_999_999)
        );
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01T00:00:00.1234567Z",
            "Infinity",
            "2024-01-01T00:00:00.Z",
            "24-01-01T00:00:00Z",
            "2024-01-01T00:00:00+25:00",
        ] {
            assert_eq!(
                parse_zoned_timestamp(bad),
                Err(TimestampError::Malformed),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn debezium_infinity_markers() {
        // recorded from Debezium 3.6.3: snapshot reads, then streamed changes
        assert_eq!(debezium_date(-622_191_234), DATE_INFINITY);
        assert_eq!(debezium_date(-625_821_272), DATE_NEG_INFINITY);
        assert_eq!(debezium_date(-2_147_472_692), DATE_INFINITY);
        assert_eq!(debezium_date(-2_147_472_691), DATE_NEG_INFINITY);
        assert_eq!(debezium_date(-2_440_550), -2_440_550);
        // timestamp (µs) and timestamp(3) (ms) markers
        let ts = |raw: i64, per: i64| debezium_timestamp(raw, raw.checked_mul(per));
        assert_eq!(ts(9_223_372_036_825_200_000, 1), Ok(TIMESTAMP_INFINITY));
        assert_eq!(
            ts(-9_223_372_036_832_400_000, 1),
            Ok(TIMESTAMP_NEG_INFINITY)
        );
        assert_eq!(ts(9_223_372_036_825_200, 1000), Ok(TIMESTAMP_INFINITY));
        assert_eq!(ts(-9_223_372_036_832_400, 1000), Ok(TIMESTAMP_NEG_INFINITY));
        // Debezium's overflow of 294276-12-31 23:59:59.999999, and the
        // milliseconds of 294276-12-31 23:59:59.999, which 64-bit micros
        // cannot hold
        assert_eq!(
            ts(-9_223_372_036_853_775_810, 1),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            ts(9_224_318_015_999_999, 1000),
            Err(TimestampError::OutOfRange)
        );
        // the earliest PostgreSQL timestamp as Debezium sends it
        assert_eq!(
            ts(-210_863_520_000_000_000, 1),
            Ok(-210_863_520_000_000_000)
        );
    }

    #[test]
    fn zoned_times() {
        assert_eq!(
            parse_zoned_time("11:45:10.5Z"),
            Some((11 * 3600 + 45 * 60 + 10) * 1_000_000 + 500_000)
        );
        assert_eq!(
            parse_zoned_time("00:30:00+01:00"),
            Some(MICROS_PER_DAY - 30 * 60 * 1_000_000)
        );
        assert_eq!(parse_zoned_time("12:00:00"), None);
    }

    #[test]
    fn bit_strings() {
        // recorded: B'101000000101' as bit(12), B'000000000000', 12 ones
        assert_eq!(
            bit_string(&[0x05, 0x0a], 12).as_deref(),
            Some("101000000101")
        );
        assert_eq!(bit_string(&[], 12).as_deref(), Some("000000000000"));
        assert_eq!(
            bit_string(&[0xff, 0x0f], 12).as_deref(),
            Some("111111111111")
        );
        assert_eq!(bit_string(&[0x01], 1).as_deref(), Some("1"));
        assert_eq!(bit_string(&[0xff, 0x1f], 12), None);
    }

    #[test]
    fn be_integers() {
        assert_eq!(i128_from_be_bytes(&[]), Some(0));
        assert_eq!(i128_from_be_bytes(&[0xff]), Some(-1));
        assert_eq!(i128_from_be_bytes(&[0x00, 0x80]), Some(128));
        let mut long = vec![0xff; 4];
        long.extend_from_slice(&(-5i128).to_be_bytes());
        assert_eq!(i128_from_be_bytes(&long), Some(-5));
        let mut overflow = vec![0x01];
        overflow.extend_from_slice(&[0; 16]);
        assert_eq!(i128_from_be_bytes(&overflow), None);
        // 17 bytes whose first byte is 0xff but whose 16-byte tail is positive
        let mut flipped = vec![0xff];
        flipped.extend_from_slice(&[0x7f; 16]);
        assert_eq!(i128_from_be_bytes(&flipped), None);
    }

    #[test]
    fn decimal_text() {
        assert_eq!(format_decimal(&1234i128.to_be_bytes(), 2), "12.34");
        assert_eq!(format_decimal(&(-5i128).to_be_bytes(), 3), "-0.005");
        assert_eq!(format_decimal(&[], 0), "0");
        assert_eq!(format_decimal(&[0x07], -2), "700");
        // beyond 128 bits: 10^40
        let ten40 = [
            0x1d, 0x63, 0x29, 0xf1, 0xc3, 0x5c, 0xa4, 0xbf, 0xab, 0xb9, 0xf5, 0x61, 0x00, 0x00,
            0x00, 0x00, 0x00,
        ];
        assert_eq!(format_decimal(&ten40, 0), format!("1{}", "0".repeat(40)));
    }
}
