//! Writes `bundled_form.rs`: the bundled playbooks as Rust code that builds their
//! model, so that `tune` does not parse their YAML at run time. The YAML stays the
//! source of truth: the file is generated from it by the test below
//! (`TUNE_BLESS=1 cargo test --lib bundled_form` rewrites it), which fails when the
//! file is not what the YAML gives, and each built form is tested equal to the parsed
//! YAML. A form whose YAML changed since it was generated is not used (its FNV-1a
//! digest is compared at compile time; see `super::BUILT`): that playbook is parsed.
//! After a model change that the generated file no longer compiles against,
//! `RUSTFLAGS='--cfg tune_regenerate' TUNE_BLESS=1 cargo test --lib bundled_form_is_what`
//! builds without it and writes it again.
//!
//! Every model type says how to write itself through [`Emit`]. The struct impls
//! destructure without `..`, and the enum impls match every variant, so a field or
//! variant added to the model and not here is a compile error, not a silent omission.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::*;

/// Rust source text being written, with its indentation.
struct Out {
    text: String,
    depth: usize,
}

impl Out {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn newline(&mut self) {
        self.text.push('\n');
        for _ in 0..self.depth {
            self.text.push_str("    ");
        }
    }

    fn open(&mut self, s: &str) {
        self.push(s);
        self.depth += 1;
    }

    fn close(&mut self, s: &str) {
        self.depth -= 1;
        self.newline();
        self.push(s);
    }

    fn field(&mut self, name: &str, value: &dyn Emit) {
        self.newline();
        self.push(name);
        self.push(": ");
        value.emit(self);
        self.push(",");
    }
}

/// A value written as a Rust expression that builds it.
trait Emit {
    fn emit(&self, o: &mut Out);
}

impl Emit for String {
    fn emit(&self, o: &mut Out) {
        // `{:?}` of a str is a valid Rust string literal (escapes included).
        o.push(&format!("String::from({self:?})"));
    }
}

impl Emit for bool {
    fn emit(&self, o: &mut Out) {
        o.push(if *self { "true" } else { "false" });
    }
}

impl Emit for u64 {
    fn emit(&self, o: &mut Out) {
        o.push(&self.to_string());
    }
}

impl Emit for i64 {
    fn emit(&self, o: &mut Out) {
        o.push(&self.to_string());
    }
}

impl Emit for f64 {
    fn emit(&self, o: &mut Out) {
        if self.is_nan() {
            o.push("f64::NAN");
        } else if self.is_infinite() {
            o.push(if *self > 0.0 {
                "f64::INFINITY"
            } else {
                "f64::NEG_INFINITY"
            });
        } else {
            // `{:?}` is the shortest text that reads back as the same f64, and always
            // has a `.` or an exponent, so it stays a float literal.
            o.push(&format!("{self:?}"));
        }
    }
}

impl<T: Emit> Emit for Option<T> {
    fn emit(&self, o: &mut Out) {
        match self {
            None => o.push("None"),
            Some(v) => {
                o.push("Some(");
                v.emit(o);
                o.push(")");
            }
        }
    }
}

impl<T: Emit> Emit for Box<T> {
    fn emit(&self, o: &mut Out) {
        o.push("Box::new(");
        (**self).emit(o);
        o.push(")");
    }
}

impl<T: Emit> Emit for Vec<T> {
    fn emit(&self, o: &mut Out) {
        if self.is_empty() {
            return o.push("Vec::new()");
        }
        o.open("vec![");
        for item in self {
            o.newline();
            item.emit(o);
            o.push(",");
        }
        o.close("]");
    }
}

impl<T: Emit> Emit for BTreeMap<String, T> {
    fn emit(&self, o: &mut Out) {
        if self.is_empty() {
            return o.push("BTreeMap::new()");
        }
        o.open("BTreeMap::from([");
        for (key, value) in self {
            o.newline();
            o.push("(");
            key.emit(o);
            o.push(", ");
            value.emit(o);
            o.push("),");
        }
        o.close("])");
    }
}

/// Fieldless enums: `Type::Variant`, the variant as `Debug` names it.
macro_rules! emit_unit {
    ($($ty:ident),* $(,)?) => {$(
        impl Emit for $ty {
            fn emit(&self, o: &mut Out) {
                o.push(&format!(concat!(stringify!($ty), "::{:?}"), self));
            }
        }
    )*};
}

emit_unit!(
    Measure,
    CounterMeasure,
    TcpState,
    SoftnetStat,
    ListenLimit,
    RxDropStat,
    RingState,
    RingTarget,
);

/// Structs, every field named (the destructuring has no `..`).
macro_rules! emit_struct {
    ($($ty:ident { $($field:ident),* $(,)? })*) => {$(
        impl Emit for $ty {
            fn emit(&self, o: &mut Out) {
                let $ty { $($field),* } = self;
                o.open(concat!(stringify!($ty), " {"));
                $(o.field(stringify!($field), $field);)*
                o.close("}");
            }
        }
    )*};
}

/// Enums whose variants each hold one value.
macro_rules! emit_enum {
    ($($ty:ident { $($variant:ident),* $(,)? })*) => {$(
        impl Emit for $ty {
            fn emit(&self, o: &mut Out) {
                match self {
                    $($ty::$variant(v) => {
                        o.push(concat!(stringify!($ty), "::", stringify!($variant), "("));
                        v.emit(o);
                        o.push(")");
                    })*
                }
            }
        }
    )*};
}

emit_enum! {
    Scalar { Integer, Float, Text }
    Condition {
        All, Any, Not, Sysctl, Counter, Sockets, KernelLog, JvmHeap, OomKill, Link, Qdisc,
        Softnet, ConntrackStat, SoftirqCpu, ListenQueue, RxDrops,
    }
    Action { SetSysctl, SetEnv, SetMtu, DeleteRootQdisc, SetRxRing }
}

emit_struct! {
    Playbook { name, description, variables, rules }
    Variable { default, description }
    Rule { id, description, detect, fix }
    SysctlCondition {
        key, measure, ratio_of, equals, not_equals, below, above, at_least, at_most,
    }
    CounterCondition {
        name, measure, window, equals, not_equals, below, above, at_least, at_most,
    }
    SocketsCondition { state, equals, not_equals, below, above, at_least, at_most }
    SoftnetCondition {
        stat, window, equals, not_equals, below, above, at_least, at_most,
    }
    ConntrackStatCondition {
        name, window, equals, not_equals, below, above, at_least, at_most,
    }
    SoftirqCpuCondition { window, equals, not_equals, below, above, at_least, at_most }
    ListenQueueCondition { limit }
    LinkCondition {
        name, kind, max_mtu_at_least, path_mismatch, equals, not_equals, below, above,
        at_least, at_most,
    }
    QdiscCondition {
        kind, link, loss_above, delay_above_ms, jitter_above_ms, duplicate_above,
        corrupt_above, reorder_above,
    }
    RxDropsCondition {
        link, stat, ring, window, equals, not_equals, below, above, at_least, at_most,
    }
    KernelLogCondition { pattern, within, at_least }
    JvmHeapCondition { headroom }
    OomKillCondition { comm, within }
    SetSysctl { key, value, at_least, at_most, widen_to }
    SetEnv { file, key, value, jvm_heap_flags, heap_percent_of_limit, dialect }
    SetMtu { value, to_path }
    DeleteRootQdisc { kind }
    SetRxRing { link, to }
}

/// The Rust name of a bundled playbook's builder: `conntrack-sizing.yml` →
/// `conntrack_sizing_yml`.
fn builder_name(file: &str) -> String {
    file.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The whole text of `bundled_form.rs` for these (file name, YAML text) pairs.
fn generate(bundled: &[(&str, &str)]) -> String {
    let mut o = Out {
        text: String::new(),
        depth: 0,
    };
    o.push(
        "// @generated from playbooks/*.yml by `TUNE_BLESS=1 cargo test --lib bundled_form`\n\
         // (src/playbook/const_form.rs); do not edit. The bundled playbooks as code that\n\
         // builds their model, so that they are not parsed at run time.\n\n\
         use std::collections::BTreeMap;\n\n\
         use super::model::*;\n\n\
         /// Each bundled playbook's file name, the FNV-1a digest of the YAML this code was\n\
         /// made from, and the function that builds it.\n\
         pub(super) const FORMS: &[(&str, u64, super::Build)] = &[",
    );
    o.depth = 1;
    for (name, text) in bundled {
        o.newline();
        let _ = write!(
            o.text,
            "({name:?}, {:#018x}, {}),",
            super::fnv1a(text),
            builder_name(name)
        );
    }
    o.depth = 0;
    o.push("\n];\n");
    for (name, text) in bundled {
        let parsed = super::parse(&format!("bundled:{name}"), text)
            .unwrap_or_else(|d| panic!("{d}"))
            .playbook;
        let _ = write!(o.text, "\nfn {}() -> Playbook {{", builder_name(name));
        o.depth = 1;
        o.newline();
        parsed.emit(&mut o);
        o.depth = 0;
        o.push("\n}\n");
    }
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_form_is_what_the_yaml_gives() {
        let want = generate(super::super::BUNDLED);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/playbook/bundled_form.rs");
        if std::env::var_os("TUNE_BLESS").is_some() {
            std::fs::write(path, &want).expect("write bundled_form.rs");
        }
        let have = std::fs::read_to_string(path).expect("read bundled_form.rs");
        assert!(
            have == want,
            "src/playbook/bundled_form.rs is not what playbooks/*.yml give; \
             run `TUNE_BLESS=1 cargo test --lib bundled_form` and commit it"
        );
    }

    #[test]
    #[cfg(not(tune_regenerate))]
    fn every_built_form_is_current_and_equals_the_parsed_yaml() {
        for ((name, text), built) in super::super::BUNDLED.iter().zip(super::super::BUILT) {
            let built = built.unwrap_or_else(|| {
                panic!("{name}: its built form is stale; run TUNE_BLESS=1 cargo test --lib bundled_form")
            });
            let parsed = super::super::parse(name, text).expect("parses").playbook;
            assert_eq!(built(), parsed, "{name}");
        }
    }

    #[test]
    fn emitted_values_read_back_as_themselves() {
        let mut o = Out {
            text: String::new(),
            depth: 0,
        };
        for x in [0.5, 1e-7, 100.0, -2.25, 1e300] {
            x.emit(&mut o);
            o.push(" ");
        }
        "a \"quoted\"\n\ttab \\ é".to_owned().emit(&mut o);
        assert_eq!(
            o.text,
            "0.5 1e-7 100.0 -2.25 1e300 String::from(\"a \\\"quoted\\\"\\n\\ttab \\\\ é\")"
        );
        assert_eq!(builder_name("conntrack-sizing.yml"), "conntrack_sizing_yml");
    }
}
