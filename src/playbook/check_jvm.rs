//! Semantic checks of the JVM conditions (`jvm_heap`, `oom_kill`) and the `set_env`
//! action, called from `check_condition` / `check_action`.

use super::{EnvMode, JvmHeapCondition, OomKillCondition, Problem, SetEnv, Vars, check_scalar};

impl JvmHeapCondition {
    /// The condition's headroom, in bytes.
    pub fn headroom_bytes(&self, vars: &Vars) -> Result<u64, String> {
        let text = super::scalar_text(&self.headroom, vars)?;
        crate::domain::jvm::parse_size(&text).ok_or_else(|| {
            format!("headroom {text:?} is not a size (write e.g. 128MiB, 1G or a number of bytes)")
        })
    }
}

pub(super) fn jvm_heap(c: &JvmHeapCondition, vars: &Vars, out: &mut Vec<Problem>) {
    if let Err(e) = c.headroom_bytes(vars) {
        out.push((c.headroom.to_string(), e));
    }
}

pub(super) fn oom_kill(c: &OomKillCondition, vars: &Vars, out: &mut Vec<Problem>) {
    // The kernel keeps 15 bytes of a command name (TASK_COMM_LEN 16).
    if c.comm.is_empty() || c.comm.len() > 15 {
        out.push((
            c.comm.clone(),
            format!(
                "oom_kill comm {:?} must be 1-15 bytes, as the kernel logs it",
                c.comm
            ),
        ));
    }
    super::check_window(&c.within, vars, out);
}

pub(super) fn set_env(e: &SetEnv, vars: &Vars, out: &mut Vec<Problem>) {
    match super::vars::expand(&e.file, vars) {
        Err(err) => out.push((e.file.clone(), err)),
        // Empty: not configured; planning says to pass --var if the rule fires.
        Ok(file) if file.is_empty() => {}
        Ok(file) => {
            let p = std::path::Path::new(&file);
            let bad = !p.is_absolute()
                || file.ends_with('/')
                || p.components().any(|c| {
                    matches!(
                        c,
                        std::path::Component::ParentDir | std::path::Component::CurDir
                    )
                });
            if bad {
                out.push((
                    e.file.clone(),
                    format!("set_env file {file:?} must be an absolute path to a file, without `.` or `..`"),
                ));
            }
        }
    }
    match super::vars::expand(&e.key, vars) {
        Err(err) => out.push((e.key.clone(), err)),
        Ok(key) if !crate::domain::envfile::valid_key(&key) => out.push((
            e.key.clone(),
            format!("set_env key {key:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
        )),
        Ok(_) => {}
    }
    let (mode, operand) = match e.mode() {
        Ok(m) => m,
        Err(err) => {
            out.push((e.key.clone(), err));
            return;
        }
    };
    let Some(text) = check_scalar(operand, vars, out) else {
        return;
    };
    match mode {
        EnvMode::Value => {
            if text.contains(['\n', '\r', '\0']) {
                out.push((
                    operand.to_string(),
                    "set_env value cannot hold a line break".into(),
                ));
            }
        }
        EnvMode::JvmHeapFlags => {
            let flags = crate::domain::jvm::split_options(&text);
            if flags.is_empty()
                || flags
                    .iter()
                    .any(|(f, _)| !crate::domain::jvm::is_heap_flag(f))
            {
                out.push((
                    operand.to_string(),
                    format!("jvm_heap_flags {text:?} must be heap-size flags only (-Xmx…, -XX:MaxRAMPercentage=…, -XX:MaxHeapSize=…, -XX:MaxRAM=…)"),
                ));
            }
        }
        EnvMode::HeapPercentOfLimit => {
            let ok = text
                .trim()
                .parse::<f64>()
                .is_ok_and(|p| p > 0.0 && p <= 100.0);
            if !ok {
                out.push((
                    operand.to_string(),
                    format!("heap_percent_of_limit must be a number in (0, 100], got {text:?}"),
                ));
            }
        }
    }
}
