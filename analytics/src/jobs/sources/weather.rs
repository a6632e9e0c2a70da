//! Hourly weather: a deterministic synthetic generator by default, or an
//! HTTP JSON API in the Open-Meteo hourly format when a URL is configured
//! (in the manifest, or in `FLOE_WEATHER_URL`).
//!
//! Both give one row per hour, `hour` as a timestamp without time zone
//! (local time, like the trips' pickup times):
//! `hour, temperature_c, precipitation_mm, wind_speed_kmh,
//! relative_humidity_pct, condition` where condition is one of `clear`,
//! `cloudy`, `fog`, `rain`, `snow`.

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Deserialize;

use crate::error::AnalyticsError;

/// The environment variable that points the weather source at an API.
pub const URL_ENV: &str = "FLOE_WEATHER_URL";

/// A manifest's `format = "weather"` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeatherSpec {
    /// The first day generated (synthetic only).
    pub start: NaiveDate,
    /// How many days are generated (synthetic only).
    pub days: u32,
    /// An Open-Meteo-style hourly JSON endpoint; overrides the generator.
    #[serde(default)]
    pub url: Option<String>,
}

/// One hour of weather.
#[derive(Debug, Clone, PartialEq)]
pub struct Hour {
    pub hour: NaiveDateTime,
    pub temperature_c: f64,
    pub precipitation_mm: f64,
    pub wind_speed_kmh: f64,
    pub relative_humidity_pct: f64,
    pub condition: &'static str,
}

/// The hours `spec` describes, from the API when a URL is set.
pub async fn hourly(spec: &WeatherSpec) -> Result<RecordBatch, AnalyticsError> {
    let url = std::env::var(URL_ENV).ok().or_else(|| spec.url.clone());
    let hours = match url {
        Some(url) => fetch(&url).await?,
        None => synthetic(spec.start, spec.days),
    };
    to_batch(&hours)
}

/// splitmix64: a stable hash, so the generator gives the same weather on
/// every machine and every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A number in [0, 1) from `seed`.
fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// New York-like weather: a seasonal and a daily temperature cycle with
/// noise, rain in six-hour spells, snow when it is cold.
pub fn synthetic(start: NaiveDate, days: u32) -> Vec<Hour> {
    let first = start.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..days as i64 * 24)
        .map(|i| {
            let hour = first + Duration::hours(i);
            let t = hour.and_utc().timestamp() as u64 / 3600;
            let doy = hour.ordinal() as f64;
            let h = hour.hour() as f64;
            let season = 12.5 - 11.0 * (std::f64::consts::TAU * (doy - 20.0) / 365.0).cos();
            let daily = 4.0 * (std::f64::consts::TAU * (h - 9.0) / 24.0).sin();
            let temperature_c = round1(season + daily + 4.0 * (unit(t) - 0.5));
            let spell = t / 6;
            let wet = unit(spell ^ 0xA5A5) < 0.18;
            let precipitation_mm = if wet {
                round1(0.2 + 3.8 * unit(t ^ 0x5A5A))
            } else {
                0.0
            };
            let wind_speed_kmh = round1(5.0 + 25.0 * unit(t ^ 0x1234) * unit(spell ^ 0x4321));
            let relative_humidity_pct = if wet {
                round1(85.0 + 10.0 * unit(t ^ 0x77))
            } else {
                round1(45.0 + 40.0 * unit(t ^ 0x77))
            };
            let condition = condition(
                precipitation_mm,
                temperature_c,
                relative_humidity_pct,
                unit(t ^ 0xC10D),
            );
            Hour {
                hour,
                temperature_c,
                precipitation_mm,
                wind_speed_kmh,
                relative_humidity_pct,
                condition,
            }
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn condition(precipitation: f64, temperature: f64, humidity: f64, cloud: f64) -> &'static str {
    if precipitation > 0.0 {
        if temperature <= 0.0 {
            "snow"
        } else {
            "rain"
        }
    } else if humidity >= 82.0 && cloud < 0.3 {
        "fog"
    } else if cloud < 0.45 {
        "cloudy"
    } else {
        "clear"
    }
}

/// The condition a WMO weather code describes (Open-Meteo's
/// `weather_code`).
fn wmo_condition(code: i64) -> &'static str {
    match code {
        0 | 1 => "clear",
        2 | 3 => "cloudy",
        45 | 48 => "fog",
        71..=77 | 85 | 86 => "snow",
        _ => "rain",
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    hourly: ApiHourly,
}

#[derive(Deserialize)]
struct ApiHourly {
    time: Vec<String>,
    temperature_2m: Vec<Option<f64>>,
    precipitation: Vec<Option<f64>>,
    wind_speed_10m: Vec<Option<f64>>,
    relative_humidity_2m: Vec<Option<f64>>,
    weather_code: Vec<Option<i64>>,
}

/// Hours from an Open-Meteo-style endpoint. An hour with a missing value
/// is an error, not a guess: the quality job checks for gaps instead.
pub async fn fetch(url: &str) -> Result<Vec<Hour>, AnalyticsError> {
    let failed = |e: reqwest::Error| AnalyticsError::Source(format!("weather from {url}: {e}"));
    let response = reqwest::get(url).await.map_err(failed)?;
    let response = response.error_for_status().map_err(failed)?;
    let body: ApiResponse = response.json().await.map_err(failed)?;
    parse(body.hourly).map_err(|e| AnalyticsError::Source(format!("weather from {url}: {e}")))
}

fn parse(h: ApiHourly) -> Result<Vec<Hour>, String> {
    let n = h.time.len();
    let lengths = [
        h.temperature_2m.len(),
        h.precipitation.len(),
        h.wind_speed_10m.len(),
        h.relative_humidity_2m.len(),
        h.weather_code.len(),
    ];
    if lengths.iter().any(|&l| l != n) {
        return Err(format!(
            "hourly arrays differ in length: time has {n}, the others {lengths:?}"
        ));
    }
    (0..n)
        .map(|i| {
            let hour = NaiveDateTime::parse_from_str(&h.time[i], "%Y-%m-%dT%H:%M")
                .map_err(|e| format!("hourly.time[{i}] {:?}: {e}", h.time[i]))?;
            let value = |v: Option<f64>, what: &str| {
                v.ok_or_else(|| format!("hourly.{what}[{i}] ({}) is null", h.time[i]))
            };
            let code = h.weather_code[i]
                .ok_or_else(|| format!("hourly.weather_code[{i}] ({}) is null", h.time[i]))?;
            Ok(Hour {
                hour,
                temperature_c: value(h.temperature_2m[i], "temperature_2m")?,
                precipitation_mm: value(h.precipitation[i], "precipitation")?,
                wind_speed_kmh: value(h.wind_speed_10m[i], "wind_speed_10m")?,
                relative_humidity_pct: value(h.relative_humidity_2m[i], "relative_humidity_2m")?,
                condition: wmo_condition(code),
            })
        })
        .collect()
}

fn to_batch(hours: &[Hour]) -> Result<RecordBatch, AnalyticsError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "hour",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("temperature_c", DataType::Float64, false),
        Field::new("precipitation_mm", DataType::Float64, false),
        Field::new("wind_speed_kmh", DataType::Float64, false),
        Field::new("relative_humidity_pct", DataType::Float64, false),
        Field::new("condition", DataType::Utf8, false),
    ]));
    let f = |get: fn(&Hour) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(hours.iter().map(get)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            hours.iter().map(|h| h.hour.and_utc().timestamp_micros()),
        )),
        f(|h| h.temperature_c),
        f(|h| h.precipitation_mm),
        f(|h| h.wind_speed_kmh),
        f(|h| h.relative_humidity_pct),
        Arc::new(StringArray::from_iter_values(
            hours.iter().map(|h| h.condition),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_hourly() {
        let start = NaiveDate::from_ymd_opt(2024, 1, 30).unwrap();
        let a = synthetic(start, 3);
        assert_eq!(a, synthetic(start, 3));
        assert_eq!(a.len(), 72);
        for pair in a.windows(2) {
            assert_eq!(pair[1].hour - pair[0].hour, Duration::hours(1));
        }
        // January in New York: cold, below 15 C every hour
        assert!(a.iter().all(|h| h.temperature_c < 15.0), "{a:?}");
        let july = synthetic(NaiveDate::from_ymd_opt(2024, 7, 10).unwrap(), 3);
        let mean = |hs: &[Hour]| hs.iter().map(|h| h.temperature_c).sum::<f64>() / hs.len() as f64;
        assert!(mean(&july) > mean(&a) + 15.0);
        assert!(a
            .iter()
            .chain(&july)
            .all(|h| (h.precipitation_mm > 0.0) == matches!(h.condition, "rain" | "snow")));
    }

    #[test]
    fn api_hours_with_a_null_are_an_error() {
        let hourly = |temperature: Option<f64>| ApiHourly {
            time: vec!["2024-03-01T00:00".into()],
            temperature_2m: vec![temperature],
            precipitation: vec![Some(0.0)],
            wind_speed_10m: vec![Some(3.0)],
            relative_humidity_2m: vec![Some(60.0)],
            weather_code: vec![Some(3)],
        };
        let hours = parse(hourly(Some(4.5))).unwrap();
        assert_eq!(hours[0].condition, "cloudy");
        assert_eq!(hours[0].temperature_c, 4.5);
        let error = parse(hourly(None)).unwrap_err();
        assert!(error.contains("temperature_2m[0]"), "{error}");
    }
}
