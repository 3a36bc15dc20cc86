//! Topic-name and topic-filter rules of MQTT 3.1.1 section 4.7, and filter matching.

/// Why a topic name or filter was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// Topic names and filters must be at least one character long `[MQTT-4.7.3-1]`.
    Empty,
    /// A topic name (in PUBLISH) must not contain `+` or `#` `[MQTT-3.3.2-2]`.
    WildcardInName,
    /// `#` must be the last character and occupy a whole level `[MQTT-4.7.1-2]`.
    MisplacedMultiLevelWildcard,
    /// `+` must occupy a whole level `[MQTT-4.7.1-3]`.
    MisplacedSingleLevelWildcard,
    /// U+0000 is not allowed in any MQTT string `[MQTT-1.5.3-2]`.
    NullCharacter,
    /// Longer than the 65 535 bytes an MQTT string can hold `[MQTT-1.5.3]`.
    TooLong,
}

impl core::fmt::Display for TopicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "topic is empty",
            TopicError::WildcardInName => "topic name contains a wildcard (+ or #)",
            TopicError::MisplacedMultiLevelWildcard => {
                "'#' must be the last level of a topic filter, alone in its level"
            }
            TopicError::MisplacedSingleLevelWildcard => "'+' must be alone in its topic level",
            TopicError::NullCharacter => "topic contains U+0000",
            TopicError::TooLong => "topic longer than 65535 bytes",
        })
    }
}

impl core::error::Error for TopicError {}

fn check_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > usize::from(u16::MAX) {
        return Err(TopicError::TooLong);
    }
    if topic.as_bytes().contains(&0) {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Whether `bytes` holds U+0000, `+` or `#`, eight bytes at a time.
fn has_special(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is zero ⇔ its high bit is set in `(v - ONES) & !v & HIGHS` (exact for
    // "any byte", which is all that is asked).
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        if has_zero(v)
            || has_zero(v ^ (ONES * u64::from(b'+')))
            || has_zero(v ^ (ONES * u64::from(b'#')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| matches!(b, 0 | b'+' | b'#'))
}

/// Checks a topic name as used in PUBLISH: non-empty, no wildcards, no U+0000.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    // Hot path (every publish): one pass over the bytes, no byte of a valid name is special.
    if !topic.is_empty() && topic.len() <= usize::from(u16::MAX) && !has_special(topic.as_bytes()) {
        return Ok(());
    }
    check_common(topic)?;
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter as used in SUBSCRIBE/UNSUBSCRIBE: wildcards only as whole levels,
/// `#` only last.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

/// Whether `topic` (a valid topic name) matches `filter` (a valid topic filter).
///
/// Topics starting with `$` are not matched by filters starting with a wildcard `[MQTT-4.7.2-1]`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_topic_name("a/b"), Ok(()));
        assert_eq!(validate_topic_name("/"), Ok(()));
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a#"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::NullCharacter));
        // Every position of the word-at-a-time scan, and bytes next to the special ones.
        for len in 1..40 {
            for at in 0..len {
                for (special, error) in [
                    (b'\0', TopicError::NullCharacter),
                    (b'+', TopicError::WildcardInName),
                    (b'#', TopicError::WildcardInName),
                ] {
                    let mut bytes = alloc::vec![b'a'; len];
                    bytes[at] = special;
                    let topic = core::str::from_utf8(&bytes).unwrap();
                    assert_eq!(validate_topic_name(topic), Err(error), "{bytes:?}");
                }
                let mut bytes = alloc::vec![b'a'; len];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = [b'\x01', b'*', b'"', b'$', b'\x7f', b'/', b'z', b'~'][(i + at) % 8];
                }
                let topic = core::str::from_utf8(&bytes).unwrap();
                assert_eq!(validate_topic_name(topic), Ok(()), "{bytes:?}");
            }
        }
        assert_eq!(validate_topic_name("températures/été/ü"), Ok(()));
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "a/+/b",
            "/+",
            "sport/tennis/#",
            "$SYS/#",
        ] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate_topic_filter("a/#/b"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("a#"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("a+/b"),
            Err(TopicError::MisplacedSingleLevelWildcard)
        );
        assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn matching() {
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(matches("+/+", "/a"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(!matches("a/b", "a"));
    }
}
