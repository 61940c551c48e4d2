//! JSON Schemas generated from the types: the playbook format (for editors and PR
//! review; draft-07 so yaml-language-server can use it), the plan file (`plan
//! --format json`, `plan -o`) and the facts snapshot (`facts --format json`, `plan
//! --facts`). Committed under `schemas/`; a test fails when the committed copies are
//! stale (`TUNE_BLESS=1 cargo test --test cli` rewrites them).
//!
//! Two transforms make the output usable by real clients, checked by `tests/lsp.rs`
//! (yaml-language-server) and `tests/schema_clients.rs` (ajv):
//! - no `"default": null`: schemars writes one on every `Option` field, and
//!   yaml-language-server 1.x builds completion snippets from defaults; for a
//!   string-typed property its `toYamlStringScalar(null)` throws, which silently drops
//!   every alternative of `Condition` holding such a property (the `sysctl` condition's
//!   `ratio_of`, the `qdisc` condition's `kind`) from the completion list, and with
//!   them the other conditions after the throw;
//! - no `format` outside draft-07's own list: schemars annotates integers with
//!   `int64`, `uint32`, `double`, ..., which ajv's default strict mode rejects as
//!   unknown formats.

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};

/// The formats draft-07 defines; ajv (with ajv-formats) and others know these.
const DRAFT07_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Removes what real clients choke on (see the module doc) from one schema object.
fn for_clients(schema: &mut Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.get("default").is_some_and(serde_json::Value::is_null) {
        obj.remove("default");
    }
    let standard = obj
        .get("format")
        .and_then(serde_json::Value::as_str)
        .map(|f| DRAFT07_FORMATS.contains(&f));
    if standard == Some(false) {
        obj.remove("format");
    }
}

fn generate<T: JsonSchema>(serialize: bool) -> String {
    let settings = SchemaSettings::draft07();
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    let settings = settings.with_transform(RecursiveTransform(for_clients));
    let schema = settings.into_generator().into_root_schema_for::<T>();
    // Serializing a schema of plain maps cannot fail.
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

pub fn playbook_schema() -> String {
    generate::<crate::playbook::Playbook>(false)
}

pub fn plan_schema() -> String {
    generate::<crate::plan::Plan>(true)
}

/// What `plan --facts` reads (and `tune facts --format json` writes).
pub fn facts_schema() -> String {
    generate::<crate::facts::Facts>(false)
}
