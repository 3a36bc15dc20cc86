//! Wall-clock time for `sub -F` (`%I`, `%U`, `%j`, `@…`), formatted as the C library's
//! `strftime` does in the C locale — what mosquitto_sub prints.
//!
//! The local time zone comes from `$TZ` or `/etc/localtime` like the C library, read from the
//! compiled tz database (TZif): `TZ` unset → `/etc/localtime`; `TZ=""`, `UTC`, `UTC0`, `GMT`
//! → UTC; `TZ=Europe/Paris` or `TZ=:Europe/Paris` → `/usr/share/zoneinfo/Europe/Paris`; an
//! absolute path → that file. An instant after the file's last transition keeps that
//! transition's offset (the file's POSIX rule for later years is not evaluated; the tz files
//! Debian and most distributions ship list transitions up to 2037). POSIX rule strings in `TZ`
//! itself (`CET-1CEST,M3.5.0,M10.5.0/3`) are not supported: such a `TZ` gives UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTime {
    /// Seconds since the Unix epoch (UTC).
    pub unix: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// Offset from UTC in seconds (east positive).
    pub offset: i32,
    /// Zone abbreviation (`UTC`, `CET`…).
    pub zone: String,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday.
    weekday: u32,
    /// 0-based day of the year.
    yearday: u32,
}

/// The local time zone, read once.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// Transition instants and the (offset, abbreviation) that starts at each.
    transitions: Vec<(i64, usize)>,
    types: Vec<(i32, String)>,
}

impl Zone {
    /// The zone `$TZ` / `/etc/localtime` names; UTC when it cannot be read.
    pub fn local() -> Zone {
        let path = match std::env::var("TZ") {
            Err(_) => Some("/etc/localtime".to_owned()),
            Ok(tz) => {
                let name = tz.strip_prefix(':').unwrap_or(&tz);
                if name.is_empty() || matches!(name, "UTC" | "UTC0" | "GMT" | "GMT0") {
                    None
                } else if name.starts_with('/') {
                    Some(name.to_owned())
                } else if name.contains("..") {
                    None
                } else {
                    Some(format!("/usr/share/zoneinfo/{name}"))
                }
            }
        };
        path.and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| Zone::from_tzif(&bytes))
            .unwrap_or_default()
    }

    /// Parses a TZif file (RFC 8536), version 1 or the 64-bit data of versions 2+.
    fn from_tzif(bytes: &[u8]) -> Option<Zone> {
        let header = |at: usize| -> Option<[usize; 6]> {
            if bytes.get(at..at + 4)? != b"TZif" {
                return None;
            }
            let mut counts = [0usize; 6];
            for (index, count) in counts.iter_mut().enumerate() {
                let start = at + 20 + index * 4;
                let raw = bytes.get(start..start + 4)?;
                *count = u32::from_be_bytes(raw.try_into().ok()?) as usize;
            }
            Some(counts)
        };
        // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        let v1 = header(0)?;
        let version = *bytes.get(4)?;
        let v1_len = v1[3] * 5 + v1[4] * 6 + v1[5] + v1[2] * 8 + v1[1] + v1[0];
        let (at, counts, time_size) = if version >= b'2' {
            let at = 44 + v1_len;
            (at, header(at)?, 8)
        } else {
            (0, v1, 4)
        };
        let [_, _, _, timecnt, typecnt, charcnt] = counts;
        let mut cursor = at + 44;
        let mut transitions = Vec::with_capacity(timecnt);
        let times = bytes.get(cursor..cursor + timecnt * time_size)?;
        cursor += timecnt * time_size;
        let indices = bytes.get(cursor..cursor + timecnt)?;
        cursor += timecnt;
        for (index, chunk) in times.chunks(time_size).enumerate() {
            let when = if time_size == 8 {
                i64::from_be_bytes(chunk.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(chunk.try_into().ok()?))
            };
            transitions.push((when, usize::from(indices[index])));
        }
        let raw_types = bytes.get(cursor..cursor + typecnt * 6)?;
        cursor += typecnt * 6;
        let chars = bytes.get(cursor..cursor + charcnt)?;
        let mut types = Vec::with_capacity(typecnt);
        for raw in raw_types.chunks(6) {
            let offset = i32::from_be_bytes(raw[..4].try_into().ok()?);
            let start = usize::from(raw[5]).min(chars.len());
            let end = chars[start..]
                .iter()
                .position(|&c| c == 0)
                .map_or(chars.len(), |n| start + n);
            types.push((
                offset,
                String::from_utf8_lossy(&chars[start..end]).into_owned(),
            ));
        }
        if types.is_empty() || transitions.iter().any(|&(_, t)| t >= types.len()) {
            return None;
        }
        Some(Zone { transitions, types })
    }

    /// Offset and abbreviation in force at `unix`.
    fn at(&self, unix: i64) -> (i32, String) {
        if self.types.is_empty() {
            return (0, "UTC".to_owned());
        }
        let index = match self.transitions.partition_point(|&(when, _)| when <= unix) {
            // Before the first transition: the first standard-time type (RFC 8536 §3.2).
            0 => 0,
            n => self.transitions[n - 1].1,
        };
        self.types[index].clone()
    }

    /// `time` in this zone.
    pub fn local_time(&self, time: SystemTime) -> LocalTime {
        let (unix, nanos) = match time.duration_since(UNIX_EPOCH) {
            Ok(since) => (since.as_secs() as i64, since.subsec_nanos()),
            Err(before) => (-(before.duration().as_secs() as i64), 0),
        };
        let (offset, zone) = self.at(unix);
        let local = unix + i64::from(offset);
        let days = local.div_euclid(86_400);
        let second_of_day = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let yearday = (days - days_from_civil(year, 1, 1)) as u32;
        LocalTime {
            unix,
            nanos,
            offset,
            zone,
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day / 60 % 60,
            second: second_of_day % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
            yearday,
        }
    }
}

/// Howard Hinnant's `civil_from_days`: (year, month 1-12, day 1-31) of a day count since
/// 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl LocalTime {
    /// ISO 8601 week-based year and week number (`%G`, `%V`).
    fn iso_week(&self) -> (i64, u32) {
        let weekday = (self.weekday + 6) % 7; // Monday = 0
        let yearday = i64::from(self.yearday);
        let week = (yearday - i64::from(weekday) + 10) / 7;
        let days_in = |year: i64| {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                366
            } else {
                365
            }
        };
        let weeks_in = |year: i64| {
            // A year has 53 weeks if it starts on a Thursday, or is leap and starts on a
            // Wednesday.
            let jan1 = (days_from_civil(year, 1, 1) + 3).rem_euclid(7); // Monday = 0
            if jan1 == 3 || (jan1 == 2 && days_in(year) == 366) {
                53
            } else {
                52
            }
        };
        if week < 1 {
            (self.year - 1, weeks_in(self.year - 1))
        } else if week > i64::from(weeks_in(self.year)) {
            (self.year + 1, 1)
        } else {
            (self.year, week as u32)
        }
    }

    fn hour12(&self) -> u32 {
        match self.hour % 12 {
            0 => 12,
            h => h,
        }
    }

    /// `±hhmm`.
    pub fn offset_text(&self) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let minutes = self.offset.unsigned_abs() / 60;
        format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
    }

    /// One `strftime` conversion in the C locale (`%Y` for `'Y'`); an unknown one is printed
    /// as `%` and the character, as glibc does.
    pub fn strftime(&self, conversion: char, out: &mut String) {
        use std::fmt::Write as _;
        let weekday = WEEKDAYS[self.weekday as usize];
        let month = MONTHS[(self.month - 1) as usize];
        let _ = match conversion {
            'a' => write!(out, "{}", &weekday[..3]),
            'A' => write!(out, "{weekday}"),
            'b' | 'h' => write!(out, "{}", &month[..3]),
            'B' => write!(out, "{month}"),
            'c' => write!(
                out,
                "{} {} {:2} {:02}:{:02}:{:02} {}",
                &weekday[..3],
                &month[..3],
                self.day,
                self.hour,
                self.minute,
                self.second,
                self.year
            ),
            'C' => write!(out, "{:02}", self.year.div_euclid(100)),
            'd' => write!(out, "{:02}", self.day),
            'D' | 'x' => write!(
                out,
                "{:02}/{:02}/{:02}",
                self.month,
                self.day,
                self.year.rem_euclid(100)
            ),
            'e' => write!(out, "{:2}", self.day),
            'F' => write!(out, "{}-{:02}-{:02}", self.year, self.month, self.day),
            'g' => write!(out, "{:02}", self.iso_week().0.rem_euclid(100)),
            'G' => write!(out, "{}", self.iso_week().0),
            'H' => write!(out, "{:02}", self.hour),
            'I' => write!(out, "{:02}", self.hour12()),
            'j' => write!(out, "{:03}", self.yearday + 1),
            'k' => write!(out, "{:2}", self.hour),
            'l' => write!(out, "{:2}", self.hour12()),
            'm' => write!(out, "{:02}", self.month),
            'M' => write!(out, "{:02}", self.minute),
            'n' => writeln!(out),
            'p' => write!(out, "{}", if self.hour < 12 { "AM" } else { "PM" }),
            'P' => write!(out, "{}", if self.hour < 12 { "am" } else { "pm" }),
            'r' => write!(
                out,
                "{:02}:{:02}:{:02} {}",
                self.hour12(),
                self.minute,
                self.second,
                if self.hour < 12 { "AM" } else { "PM" }
            ),
            'R' => write!(out, "{:02}:{:02}", self.hour, self.minute),
            's' => write!(out, "{}", self.unix),
            'S' => write!(out, "{:02}", self.second),
            't' => write!(out, "\t"),
            'T' | 'X' => write!(
                out,
                "{:02}:{:02}:{:02}",
                self.hour, self.minute, self.second
            ),
            'u' => write!(out, "{}", (self.weekday + 6) % 7 + 1),
            'U' => write!(out, "{:02}", (self.yearday + 7 - self.weekday) / 7),
            'V' => write!(out, "{:02}", self.iso_week().1),
            'w' => write!(out, "{}", self.weekday),
            'W' => write!(
                out,
                "{:02}",
                (self.yearday + 7 - (self.weekday + 6) % 7) / 7
            ),
            'y' => write!(out, "{:02}", self.year.rem_euclid(100)),
            'Y' => write!(out, "{}", self.year),
            'z' => write!(out, "{}", self.offset_text()),
            'Z' => write!(out, "{}", self.zone),
            '%' => write!(out, "%"),
            other => write!(out, "%{other}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn utc(unix: u64) -> LocalTime {
        Zone::default().local_time(UNIX_EPOCH + Duration::from_secs(unix))
    }

    fn format(time: &LocalTime, conversions: &str) -> String {
        let mut out = String::new();
        for (index, conversion) in conversions.chars().enumerate() {
            if index > 0 {
                out.push(' ');
            }
            time.strftime(conversion, &mut out);
        }
        out
    }

    #[test]
    fn strftime_matches_glibc_in_the_c_locale() {
        // 2026-11-30 13:48:25 UTC, a Monday (the values `date -u` prints for these).
        let time = utc(1_796_046_505);
        assert_eq!(
            format(&time, "aAbBCdDeFgGHIjklmMpPrRsSTuUVwWxXyYzZ"),
            "Mon Monday Nov November 20 30 11/30/26 30 2026-11-30 26 2026 13 01 334 13  1 11 \
             48 PM pm 01:48:25 PM 13:48 1796046505 25 13:48:25 1 48 49 1 48 11/30/26 13:48:25 \
             26 2026 +0000 UTC"
        );
        assert_eq!(format(&time, "c"), "Mon Nov 30 13:48:25 2026");
        assert_eq!(format(&time, "q"), "%q");
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(format(&utc(0), "FTaj"), "1970-01-01 00:00:00 Thu 001");
        // 2024-02-29, a leap day; 2021-01-03 belongs to ISO week 53 of 2020.
        assert_eq!(format(&utc(1_709_164_800), "Fj"), "2024-02-29 060");
        assert_eq!(format(&utc(1_609_632_000), "FGV"), "2021-01-03 2020 53");
        assert_eq!(format(&utc(1_609_718_400), "FGV"), "2021-01-04 2021 01");
    }

    #[test]
    fn tzif_offsets_apply_from_each_transition() {
        // A version 1 file: CET (+1h) before 2000-03-26T01:00Z, CEST (+2h) after.
        let mut file = b"TZif".to_vec();
        file.extend([0u8; 16]);
        for count in [0u32, 0, 0, 1, 2, 9] {
            file.extend(count.to_be_bytes());
        }
        file.extend(954_032_400i32.to_be_bytes());
        file.push(1);
        file.extend(3600i32.to_be_bytes());
        file.extend([0, 0]);
        file.extend(7200i32.to_be_bytes());
        file.extend([1, 4]);
        file.extend(b"CET\0CEST\0");
        let zone = Zone::from_tzif(&file).expect("valid TZif");
        let winter = zone.local_time(UNIX_EPOCH + Duration::from_secs(954_032_399));
        assert_eq!(format(&winter, "TzZ"), "01:59:59 +0100 CET");
        let summer = zone.local_time(UNIX_EPOCH + Duration::from_secs(954_032_400));
        assert_eq!(format(&summer, "TzZ"), "03:00:00 +0200 CEST");
        assert!(Zone::from_tzif(b"not a tz file").is_none());
    }
}
