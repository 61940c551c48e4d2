//! JSON Schemas generated from the types: the playbook format (for editors and PR
//! review; draft-07 so yaml-language-server can use it) and the plan file (`plan
//! --format json`, `plan -o`). Committed under `schemas/`; a test fails when the
//! committed copies are stale (`TUNE_BLESS=1 cargo test` rewrites them).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

fn generate<T: JsonSchema>(serialize: bool) -> String {
    let settings = SchemaSettings::draft07();
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
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
