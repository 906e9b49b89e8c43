//! Tests of the canonical JSON value type, its `serde_json` conversions and
//! the parser (the writer's tests live next to it).

mod value {
    use crate::security::canonical_json::*;
    use serde_json::json;

    #[test]
    fn duplicate_keys_last_wins_and_keys_sort_by_code_point() {
        let v = parse(br#"{"b":1,"a":2,"b":3,"Z":0,"\u00e9":4,"b":5}"#).unwrap();
        let o = v.as_object().unwrap();
        let keys: Vec<&str> = o.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["Z", "a", "b", "é"]);
        assert_eq!(o.get("b"), Some(&Value::Int(5)));
        assert_eq!(to_canonical_vec(&v).unwrap(), r#"{"Z":0,"a":2,"b":5,"é":4}"#.as_bytes());
    }

    #[test]
    fn object_insert_remove_keep_order() {
        let mut o = Object::new();
        assert_eq!(o.insert("b", Value::Int(1)), None);
        assert_eq!(o.insert("a", Value::Null), None);
        assert_eq!(o.insert("b", Value::Int(2)), Some(Value::Int(1)));
        assert!(o.contains_key("a"));
        assert_eq!(o.remove("a"), Some(Value::Null));
        assert_eq!(o.remove("zz"), None);
        assert_eq!(o.len(), 1);
        let collected: Object =
            vec![("x".to_owned(), Value::Int(1)), ("x".to_owned(), Value::Int(2))].into_iter().collect();
        assert_eq!(collected.get("x"), Some(&Value::Int(2)));
    }

    #[test]
    fn serde_round_trip_keeps_int_float_kinds() {
        let j = json!({"i": 1, "f": 1.0, "neg": -5, "u": u64::MAX, "s": "x", "a": [null, true, 0.5]});
        let v = Value::from_serde(&j).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.get("i"), Some(&Value::Int(1)));
        assert_eq!(o.get("f"), Some(&Value::Float(1.0)));
        assert_eq!(
            o.get("u").and_then(|u| match u {
                Value::BigInt(b) => b.as_u64(),
                _ => None,
            }),
            Some(u64::MAX)
        );
        assert_eq!(
            to_canonical_vec(&v).unwrap(),
            br#"{"a":[null,true,0.5],"f":1.0,"i":1,"neg":-5,"s":"x","u":18446744073709551615}"#
        );
        assert_eq!(v.to_serde().unwrap(), j);
    }

    #[test]
    fn huge_ints_become_strings_in_serde_json() {
        let v = parse(br#"{"big":18446744073709551617,"neg":-99999999999999999999}"#).unwrap();
        assert_eq!(v.to_serde().unwrap(), json!({"big": "18446744073709551617", "neg": "-99999999999999999999"}));
    }

    #[test]
    fn serde_conversion_depth_is_bounded() {
        let mut j = json!(1);
        for _ in 0..MAX_DEPTH {
            j = json!([j]);
        }
        assert!(Value::from_serde(&j).is_ok());
        let j = json!([j]);
        assert_eq!(Value::from_serde(&j), Err(ConvertError::TooDeep));
        let mut v = Value::Null;
        for _ in 0..=MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert_eq!(v.to_serde(), Err(ConvertError::TooDeep));
        assert_eq!(Value::Float(f64::NAN).to_serde(), Err(ConvertError::NonFinite));
    }

    #[test]
    fn decimal_int_constructor() {
        assert_eq!(Value::from_decimal_int("-0"), Some(Value::Int(0)));
        assert_eq!(Value::from_decimal_int("9223372036854775807"), Some(Value::Int(i64::MAX)));
        assert!(matches!(
            Value::from_decimal_int("9223372036854775808"),
            Some(Value::BigInt(b)) if b.as_str() == "9223372036854775808"
        ));
        assert_eq!(Value::from_decimal_int("01"), None);
        assert_eq!(Value::from_decimal_int("1.0"), None);
        assert_eq!(Value::from_decimal_int(""), None);
    }
}

mod parser {
    use crate::security::canonical_json::to_canonical_vec;
    use crate::security::canonical_json::{
        parse, parse_with_max_depth, ParseError, ParseErrorKind, Value, MAX_DEPTH, MAX_INT_DIGITS,
    };
    use ParseErrorKind as K;

    fn kind(input: &[u8]) -> ParseErrorKind {
        parse(input).unwrap_err().kind
    }

    fn canon(input: &str) -> String {
        String::from_utf8(to_canonical_vec(&parse(input.as_bytes()).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn scalars_and_whitespace() {
        assert_eq!(parse(b" \t\r\n null \n").unwrap(), Value::Null);
        assert_eq!(parse(b"true").unwrap(), Value::Bool(true));
        assert_eq!(parse(b"false").unwrap(), Value::Bool(false));
        assert_eq!(parse(b"\"x\"").unwrap(), Value::String("x".into()));
        assert_eq!(kind(b""), K::UnexpectedEnd);
        assert_eq!(kind(b"   "), K::UnexpectedEnd);
        assert_eq!(kind(b"tru"), K::UnexpectedChar);
        assert_eq!(kind(b"\x0cnull"), K::UnexpectedChar);
        assert_eq!(kind(b"\xef\xbb\xbf{}"), K::UnexpectedChar);
    }

    #[test]
    fn integers_keep_python_precision() {
        assert_eq!(parse(b"-0").unwrap(), Value::Int(0));
        assert_eq!(
            canon("[-0, 0, -1, 9223372036854775807, -9223372036854775808]"),
            "[0,0,-1,9223372036854775807,-9223372036854775808]"
        );
        assert_eq!(
            canon("[9223372036854775808,-9223372036854775809,18446744073709551617]"),
            "[9223372036854775808,-9223372036854775809,18446744073709551617]"
        );
        let long = "9".repeat(MAX_INT_DIGITS);
        assert_eq!(canon(&long), long);
        let too_long = "9".repeat(MAX_INT_DIGITS + 1);
        assert_eq!(kind(too_long.as_bytes()), K::IntegerTooLong);
    }

    #[test]
    fn malformed_numbers() {
        for bad in ["01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.e5", "--1", "1.5.2"] {
            let k = kind(bad.as_bytes());
            assert!(
                matches!(k, K::InvalidNumber | K::TrailingData | K::UnexpectedChar | K::UnexpectedEnd),
                "{bad}: {k:?}"
            );
        }
        assert_eq!(canon("[1E2,1e-2,1.5E+3,-0.0,0e0]"), "[100.0,0.01,1500.0,-0.0,0.0]");
    }

    #[test]
    fn non_finite_numbers_are_rejected() {
        for bad in ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "[1.7976931348623159e308]"] {
            assert_eq!(kind(bad.as_bytes()), K::NonFinite, "{bad}");
        }
        assert_eq!(kind(b"Nan"), K::UnexpectedChar);
        assert_eq!(kind(b"-Inf"), K::UnexpectedChar);
        assert_eq!(canon("[1e-400]"), "[0.0]");
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            parse(br#""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20AC""#).unwrap(),
            Value::String("a\"b\\c/d\u{8}\u{c}\n\r\tA\u{e9}\u{20ac}".into())
        );
        assert_eq!(parse(br#""\ud83d\ude00""#).unwrap(), Value::String("\u{1F600}".into()));
        assert_eq!(
            parse("\"\u{1F600}\u{7f}\u{2028}\"".as_bytes()).unwrap(),
            Value::String("\u{1F600}\u{7f}\u{2028}".into())
        );
        assert_eq!(kind(br#""\x""#), K::InvalidEscape);
        assert_eq!(kind(br#""\u12""#), K::InvalidEscape);
        assert_eq!(kind(br#""\u12G4""#), K::InvalidEscape);
        assert_eq!(kind(b"\"a\x01b\""), K::ControlChar);
        assert_eq!(kind(b"\"a\nb\""), K::ControlChar);
        assert_eq!(kind(b"\"abc"), K::UnexpectedEnd);
        assert_eq!(kind(b"\"abc\\"), K::UnexpectedEnd);
    }

    #[test]
    fn lone_surrogates_are_rejected() {
        for bad in [r#""\ud83d""#, r#""\ude00""#, r#""\ud83dx""#, r#""\ud83d\u0041""#, r#""\ud83d\ud83d""#] {
            assert_eq!(kind(bad.as_bytes()), K::LoneSurrogate, "{bad}");
        }
        // Encoded surrogates (CESU-style) are not valid UTF-8.
        assert_eq!(kind(b"\"\xed\xa0\x80\""), K::InvalidUtf8);
        assert_eq!(kind(b"\"\xff\""), K::InvalidUtf8);
    }

    #[test]
    fn structure_errors() {
        assert_eq!(kind(b"{\"a\":1,}"), K::UnexpectedChar);
        assert_eq!(kind(b"[1,]"), K::UnexpectedChar);
        assert_eq!(kind(b"{1:2}"), K::UnexpectedChar);
        assert_eq!(kind(b"{\"a\" 1}"), K::UnexpectedChar);
        assert_eq!(kind(b"{\"a\":1"), K::UnexpectedEnd);
        assert_eq!(kind(b"[1 2]"), K::UnexpectedChar);
        assert_eq!(kind(b"{} {}"), K::TrailingData);
        assert_eq!(kind(b"{}x"), K::TrailingData);
        assert_eq!(kind(b"{}\x00"), K::TrailingData);
        assert_eq!(canon(" { \"b\" : [ ] , \"a\" : { } } "), r#"{"a":{},"b":[]}"#);
    }

    #[test]
    fn depth_limit_is_an_error_not_a_stack_overflow() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(kind(deep.as_bytes()), K::TooDeep);
        let hostile = "[{\"a\":".repeat(100_000);
        assert_eq!(kind(hostile.as_bytes()), K::TooDeep);
        assert_eq!(parse_with_max_depth(b"[[1]]", 1).unwrap_err().kind, K::TooDeep);
    }

    #[test]
    fn error_offsets_point_at_the_problem() {
        assert_eq!(parse(b"[1, x]").unwrap_err(), ParseError { kind: K::UnexpectedChar, offset: 4 });
        assert_eq!(parse(b"ab\xffc").unwrap_err().offset, 2);
    }
}

mod robustness {
    use crate::security::canonical_json::{parse, to_canonical_vec};

    /// Deterministic xorshift, so failures reproduce.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn mutated_frames_never_panic_and_canonical_form_round_trips() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/z4j-wire-vectors.json")).unwrap();
        let seeds: Vec<Vec<u8>> = vectors["signed_vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["wire_frame_utf8"].as_str().unwrap().as_bytes().to_vec())
            .collect();
        let alphabet = b"{}[]\",:\\u0123456789abcdefABCDEF.eE+-ntrfalsu \t\n\x00\x1f\x7f\xc3\xa9\xed\xa0\x80";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut parsed = 0;
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].clone();
            for _ in 0..=(next(&mut state) % 4) {
                let pos = (next(&mut state) as usize) % (input.len() + 1);
                let byte = alphabet[(next(&mut state) as usize) % alphabet.len()];
                match next(&mut state) % 3 {
                    0 => input.insert(pos, byte),
                    1 if pos < input.len() => input[pos] = byte,
                    _ => input.truncate(pos),
                }
            }
            if let Ok(value) = parse(&input) {
                parsed += 1;
                let canonical = to_canonical_vec(&value).unwrap();
                assert_eq!(parse(&canonical).unwrap(), value);
                assert_eq!(to_canonical_vec(&parse(&canonical).unwrap()).unwrap(), canonical);
            }
        }
        assert!(parsed > 1_000, "{parsed}");
    }
}
