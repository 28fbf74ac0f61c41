//! Reads a command's `arguments` object the way qemu-ga's generated QAPI
//! marshallers do (the QObject input visitor), with the same error texts.
//!
//! Call the getters in the command's schema member order, then [`Args::finish`]:
//! qemu-ga visits every member of the argument struct first, stopping at the
//! first missing or mistyped one, and only then reports a member it did not
//! visit as unexpected.
//!
//! Values are kept as raw JSON text and only parsed when asked for, so an
//! unexpected member of any size or nesting depth costs no recursion, and a
//! number serde_json could not represent (`1e400`) is still just "not an
//! integer", as in qemu-ga.
//!
//! [`command`] holds the rest every component shares: the reply type, name
//! dispatch and the export glue.

pub mod command;

pub use command::{Handler, Reply, dispatch};

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// The JSON type of a member, as the visitor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// The members of an `arguments` object not yet visited.
#[derive(Debug)]
pub struct Args<'a> {
    // Sorted by name: qemu-ga reports the first leftover member in GHashTable
    // order, which no client can rely on; name order is at least stable.
    members: BTreeMap<String, &'a RawValue>,
    /// How member names are shown in errors: empty for a command's
    /// arguments, `vcpus[0].` inside a list element, as QAPI names them.
    prefix: String,
}

impl<'a> Args<'a> {
    /// Parses `text`, the request's `arguments` as JSON text.
    pub fn parse(text: &'a str) -> Result<Self, String> {
        // The runtime only ever passes an object; anything else is a runtime
        // bug, reported as qemu-ga reports a non-object `arguments`.
        serde_json::from_str::<BTreeMap<String, &'a RawValue>>(text)
            .map(|members| Args {
                members,
                prefix: String::new(),
            })
            .map_err(|_| "QMP input member 'arguments' must be an object".to_owned())
    }

    /// Removes member `name`, if present, for the caller to visit (alternates).
    pub fn take(&mut self, name: &str) -> Option<Arg<'a>> {
        self.members.remove_entry(name).map(|(name, raw)| Arg {
            name: format!("{}{name}", self.prefix),
            raw,
        })
    }

    /// Removes mandatory member `name`.
    pub fn required(&mut self, name: &str) -> Result<Arg<'a>, String> {
        self.take(name)
            .ok_or_else(|| format!("Parameter '{}{name}' is missing", self.prefix))
    }

    pub fn int(&mut self, name: &str) -> Result<i64, String> {
        self.required(name)?.int()
    }

    pub fn opt_int(&mut self, name: &str) -> Result<Option<i64>, String> {
        self.take(name).map(|arg| arg.int()).transpose()
    }

    pub fn string(&mut self, name: &str) -> Result<String, String> {
        self.required(name)?.string()
    }

    pub fn opt_string(&mut self, name: &str) -> Result<Option<String>, String> {
        self.take(name).map(|arg| arg.string()).transpose()
    }

    pub fn bool(&mut self, name: &str) -> Result<bool, String> {
        self.required(name)?.bool()
    }

    pub fn opt_bool(&mut self, name: &str) -> Result<Option<bool>, String> {
        self.take(name).map(|arg| arg.bool()).transpose()
    }

    /// Fails on the first member no getter has taken.
    pub fn finish(self) -> Result<(), String> {
        match self.members.into_keys().next() {
            Some(name) => Err(format!("Parameter '{}{name}' is unexpected", self.prefix)),
            None => Ok(()),
        }
    }
}

/// One member taken from [`Args`].
#[derive(Debug)]
pub struct Arg<'a> {
    name: String,
    raw: &'a RawValue,
}

impl<'a> Arg<'a> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn json_type(&self) -> JsonType {
        // The text is valid JSON without leading whitespace, so its first
        // byte decides the type.
        match self.raw.get().as_bytes().first() {
            Some(b'n') => JsonType::Null,
            Some(b't' | b'f') => JsonType::Bool,
            Some(b'"') => JsonType::String,
            Some(b'[') => JsonType::Array,
            Some(b'{') => JsonType::Object,
            _ => JsonType::Number,
        }
    }

    /// `Invalid parameter type for '<name>', expected: <expected>`.
    pub fn type_error(&self, expected: &str) -> String {
        format!(
            "Invalid parameter type for '{}', expected: {expected}",
            self.name
        )
    }

    /// An int64. Like qemu-ga, only a JSON integer literal within i64 counts:
    /// `1.0`, `1e3` and `9223372036854775808` are type errors, `-0` is 0.
    pub fn int(&self) -> Result<i64, String> {
        if self.json_type() != JsonType::Number {
            return Err(self.type_error("integer"));
        }
        // Rust's integer syntax accepts every JSON integer literal and
        // rejects fractions and exponents, which is exactly the split.
        self.raw
            .get()
            .parse::<i64>()
            .map_err(|_| self.type_error("integer"))
    }

    /// A string, borrowed from the arguments text when it has no escapes:
    /// bulk payloads (base64) are then never copied.
    pub fn text(&self) -> Result<Cow<'a, str>, String> {
        if self.json_type() != JsonType::String {
            return Err(self.type_error("string"));
        }
        match serde_json::from_str::<&'a str>(self.raw.get()) {
            Ok(text) => Ok(Cow::Borrowed(text)),
            Err(_) => self.string().map(Cow::Owned),
        }
    }

    pub fn string(&self) -> Result<String, String> {
        if self.json_type() != JsonType::String {
            return Err(self.type_error("string"));
        }
        // Only a lone surrogate escape (`"\ud800"`) fails here, and the
        // runtime's parser rejects those before the request gets this far.
        serde_json::from_str(self.raw.get())
            .map_err(|_| format!("Parameter '{}' is not a valid string", self.name))
    }

    pub fn bool(&self) -> Result<bool, String> {
        match self.raw.get() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.type_error("boolean")),
        }
    }

    /// A list's elements, each named `<name>[i]`.
    pub fn list(&self) -> Result<Vec<Arg<'a>>, String> {
        if self.json_type() != JsonType::Array {
            return Err(self.type_error("array"));
        }
        let elements: Vec<&'a RawValue> =
            serde_json::from_str(self.raw.get()).map_err(|_| self.type_error("array"))?;
        Ok(elements
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Arg {
                name: format!("{}[{i}]", self.name),
                raw,
            })
            .collect())
    }

    /// An object's members, to visit like a command's arguments; errors
    /// name them `<name>.<member>`.
    pub fn object(&self) -> Result<Args<'a>, String> {
        if self.json_type() != JsonType::Object {
            return Err(self.type_error("object"));
        }
        let members =
            serde_json::from_str(self.raw.get()).map_err(|_| self.type_error("object"))?;
        Ok(Args {
            members,
            prefix: format!("{}.", self.name),
        })
    }

    /// The index of this member's value in `values`, an enum's names in
    /// order; a QAPI enum is visited as a string first.
    pub fn enum_index(&self, values: &[&str]) -> Result<usize, String> {
        let value = self.string()?;
        values
            .iter()
            .position(|v| *v == value)
            .ok_or_else(|| format!("Parameter '{}' does not accept value '{value}'", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_of(text: &str) -> Result<i64, String> {
        let mut args = Args::parse(text)?;
        let x = args.int("x")?;
        args.finish()?;
        Ok(x)
    }

    const NOT_INT: &str = "Invalid parameter type for 'x', expected: integer";

    /// `{"l": [{"a": int, "*b": bool}]}` as QAPI visits it.
    fn list_of(text: &str) -> Result<Vec<(i64, Option<bool>)>, String> {
        let mut args = Args::parse(text)?;
        let mut out = Vec::new();
        for element in args.required("l")?.list()? {
            let mut member = element.object()?;
            out.push((member.int("a")?, member.opt_bool("b")?));
            member.finish()?;
        }
        args.finish()?;
        Ok(out)
    }

    #[test]
    fn lists_of_objects_name_their_members_as_qapi_does() {
        assert_eq!(
            list_of(r#"{"l":[{"a":1},{"a":2,"b":true}]}"#),
            Ok(vec![(1, None), (2, Some(true))])
        );
        assert_eq!(list_of(r#"{"l":[]}"#), Ok(vec![]));
        let err = |text| list_of(text).unwrap_err();
        assert_eq!(
            err(r#"{"l":{}}"#),
            "Invalid parameter type for 'l', expected: array"
        );
        assert_eq!(
            err(r#"{"l":[1]}"#),
            "Invalid parameter type for 'l[0]', expected: object"
        );
        assert_eq!(
            err(r#"{"l":[{"a":1},{}]}"#),
            "Parameter 'l[1].a' is missing"
        );
        assert_eq!(
            err(r#"{"l":[{"a":1,"b":0}]}"#),
            "Invalid parameter type for 'l[0].b', expected: boolean"
        );
        assert_eq!(
            err(r#"{"l":[{"a":1,"c":0}]}"#),
            "Parameter 'l[0].c' is unexpected"
        );
    }

    #[test]
    fn arguments_must_be_an_object() {
        for text in ["[]", "null", "1", "\"x\"", "true", "", "{", "{} x"] {
            assert_eq!(
                Args::parse(text).unwrap_err(),
                "QMP input member 'arguments' must be an object",
                "{text:?}"
            );
        }
        assert!(Args::parse(" { } ").unwrap().finish().is_ok());
    }

    #[test]
    fn ints_in_range() {
        assert_eq!(int_of(r#"{"x":0}"#), Ok(0));
        assert_eq!(int_of(r#"{"x": -0 }"#), Ok(0));
        assert_eq!(int_of(r#"{"x":9223372036854775807}"#), Ok(i64::MAX));
        assert_eq!(int_of(r#"{"x":-9223372036854775808}"#), Ok(i64::MIN));
    }

    #[test]
    fn non_integers_are_type_errors() {
        for v in [
            "1.0",
            "1e3",
            "1E3",
            "-1.5",
            "1e400",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "\"1\"",
            "true",
            "null",
            "[1]",
            "{\"a\":1}",
        ] {
            assert_eq!(
                int_of(&format!(r#"{{"x":{v}}}"#)),
                Err(NOT_INT.into()),
                "{v}"
            );
        }
    }

    #[test]
    fn missing_and_optional() {
        assert_eq!(int_of("{}"), Err("Parameter 'x' is missing".into()));
        let mut args = Args::parse("{}").unwrap();
        assert_eq!(args.opt_int("x"), Ok(None));
        assert_eq!(args.opt_string("s"), Ok(None));
        assert_eq!(args.opt_bool("b"), Ok(None));
        assert!(args.take("y").is_none());
        assert_eq!(args.finish(), Ok(()));
        // qemu-ga treats a present null as a value of the wrong type.
        let mut args = Args::parse(r#"{"x":null}"#).unwrap();
        assert_eq!(args.opt_int("x"), Err(NOT_INT.into()));
    }

    #[test]
    fn strings() {
        let mut args = Args::parse(r#"{"s":"a\"\u00e9\n","t":1,"u":"\ud800"}"#).unwrap();
        assert_eq!(args.string("s"), Ok("a\"é\n".to_owned()));
        assert_eq!(
            args.opt_string("t"),
            Err("Invalid parameter type for 't', expected: string".into())
        );
        assert_eq!(
            args.string("u"),
            Err("Parameter 'u' is not a valid string".into())
        );
        assert_eq!(args.string("v"), Err("Parameter 'v' is missing".into()));
    }

    #[test]
    fn bools() {
        let mut args = Args::parse(r#"{"a":true,"b":false,"c":0}"#).unwrap();
        assert_eq!(args.bool("a"), Ok(true));
        assert_eq!(args.opt_bool("b"), Ok(Some(false)));
        assert_eq!(
            args.bool("c"),
            Err("Invalid parameter type for 'c', expected: boolean".into())
        );
    }

    #[test]
    fn json_types_and_enums() {
        let mut args =
            Args::parse(r#"{"n":null,"b":true,"i":-1,"s":"cur","a":[],"o":{},"z":"foo"}"#).unwrap();
        let ty = |args: &mut Args, name| args.take(name).unwrap().json_type();
        assert_eq!(ty(&mut args, "n"), JsonType::Null);
        assert_eq!(ty(&mut args, "b"), JsonType::Bool);
        assert_eq!(ty(&mut args, "i"), JsonType::Number);
        assert_eq!(ty(&mut args, "a"), JsonType::Array);
        assert_eq!(ty(&mut args, "o"), JsonType::Object);
        let s = args.take("s").unwrap();
        assert_eq!(s.json_type(), JsonType::String);
        assert_eq!(s.name(), "s");
        assert_eq!(s.enum_index(&["set", "cur", "end"]), Ok(1));
        assert_eq!(
            args.take("z").unwrap().enum_index(&["set", "cur", "end"]),
            Err("Parameter 'z' does not accept value 'foo'".into())
        );
        assert_eq!(args.finish(), Ok(()));
    }

    #[test]
    fn unexpected_after_visited() {
        // A type error in a known member wins over an unexpected member.
        assert_eq!(int_of(r#"{"foo":1,"x":"a"}"#), Err(NOT_INT.into()));
        assert_eq!(int_of(r#"{"x":"a"}"#), Err(NOT_INT.into()));
        assert_eq!(
            int_of(r#"{"foo":1}"#),
            Err("Parameter 'x' is missing".into())
        );
        assert_eq!(
            int_of(r#"{"x":1,"foo":42}"#),
            Err("Parameter 'foo' is unexpected".into())
        );
        assert_eq!(
            Args::parse(r#"{"zz":1,"aa":2}"#).unwrap().finish(),
            Err("Parameter 'aa' is unexpected".into())
        );
        // Names are case-sensitive and escapes in them are decoded.
        assert_eq!(int_of(r#"{"X":1}"#), Err("Parameter 'x' is missing".into()));
        assert_eq!(int_of(r#"{"\u0078":5}"#), Ok(5));
    }

    #[test]
    fn deep_unexpected_member_needs_no_recursion() {
        // Deeper than serde_json's recursion limit for `Value` (128), and as
        // deep as the qemu-ga nesting limit allows.
        let deep = format!("{}{}", "[".repeat(1022), "]".repeat(1022));
        let text = format!(r#"{{"x":1,"foo":{deep}}}"#);
        assert_eq!(int_of(&text), Err("Parameter 'foo' is unexpected".into()));
        let text = format!(r#"{{"x":{deep}}}"#);
        assert_eq!(int_of(&text), Err(NOT_INT.into()));
    }
}
