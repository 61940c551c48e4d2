//! What the JSON Schema says about playbook values that serde reads as plain strings
//! or [`Scalar`](super::Scalar)s: a number (or a `${variable}`), a duration, a port
//! range. Only the schema uses these types (`#[schemars(with = ...)]` in the model);
//! the semantic checks in `check` stay the authority, the schema lets an editor flag
//! the same mistakes while the playbook is written.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A `${name}` reference anywhere in a string (variables may hold anything; `check`
/// looks at the expanded value).
const VARIABLE: &str = r"\$\{[^}]+\}";

/// A number, a numeric string, or a string that is a `${variable}` reference.
pub struct NumberOrVar;

impl JsonSchema for NumberOrVar {
    fn schema_name() -> Cow<'static, str> {
        "NumberOrVar".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number, or a `${variable}` that holds one.",
            "anyOf": [
                { "type": "number" },
                {
                    "type": "string",
                    "pattern": format!(r"^\s*(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|{VARIABLE})\s*$"),
                },
            ],
        })
    }
}

/// The units `humantime` (which reads `within:`) accepts.
const DURATION_UNITS: &str = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|\
    minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|\
    months|month|M|years|year|yrs|yr|y";

/// A time window such as `1h`, `30m` or `2h 30m`, or a `${variable}` that holds one.
pub struct Duration;

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A time window: a number and a unit, repeated (`1h`, `30m`, `2h 30m`, `24hours`), or a `${variable}` that holds one.",
            "type": "string",
            "pattern": format!(r"^(\s*[0-9]+(\.[0-9]+)?\s*({DURATION_UNITS})\s*)+$|{VARIABLE}"),
        })
    }
}

/// Two numbers `low high`, or a `${variable}` that holds them.
pub struct Range;

impl JsonSchema for Range {
    fn schema_name() -> Cow<'static, str> {
        "Range".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Two numbers, `low high` (e.g. `10000 65535`), or a `${variable}` that holds them.",
            "type": "string",
            "pattern": format!(r"^\s*[0-9]+\s+[0-9]+\s*$|{VARIABLE}"),
        })
    }
}
