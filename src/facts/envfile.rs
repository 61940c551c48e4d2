//! Environment files named by `set_env` fixes: where they really are and what they
//! hold, byte for byte.
//!
//! The *intended directory* of `/etc/default/tomcat9` is `/etc/default`, and every
//! directory on the way there must be a real directory: a symlinked directory anywhere
//! in the path is refused. A symlink in that directory that names a regular file in the
//! same directory is followed (edits go to its target, the link stays); one that points
//! anywhere else, to another link, or nowhere, is refused, so a planted link cannot
//! steer a root write to another file. The apply executor (`apply::envfile`) resolves through the
//! same function before every read and write.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::describe_io_error;

/// Largest environment file read; anything larger is not a `KEY=VALUE` file.
pub const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;

/// The file that reads and writes of `path` go to.
pub fn resolve(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("{path:?} is not an absolute path"));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || path.ends_with('/')
    {
        return Err(format!("{path:?} must name a file without `.` or `..`"));
    }
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(format!("{path:?} does not name a file"));
    };
    check_directories(dir)?;
    let dir = dir.to_path_buf();
    let file = dir.join(name);
    match std::fs::symlink_metadata(&file) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(file),
        Err(e) => Err(format!("{}: {}", file.display(), describe_io_error(&e))),
        Ok(meta) if meta.file_type().is_symlink() => {
            let link = std::fs::read_link(&file)
                .map_err(|e| format!("{}: {}", file.display(), describe_io_error(&e)))?;
            let target = dir.join(&link);
            // Lexically, without following anything: the link must name a file of
            // this directory (`real`, `./real` or `/same/dir/real`), which must be a
            // regular file itself, not another link.
            let plain = !link.components().any(|c| matches!(c, Component::ParentDir));
            let target_dir: PathBuf = target
                .parent()
                .map(|d| d.components().filter(|c| *c != Component::CurDir).collect())
                .unwrap_or_default();
            if !plain || target_dir != dir {
                return Err(format!(
                    "{} is a symlink to {}, outside {}; refusing to follow it",
                    file.display(),
                    link.display(),
                    dir.display()
                ));
            }
            match std::fs::symlink_metadata(&target) {
                Err(e) => Err(format!(
                    "{}: a symlink to nowhere ({})",
                    file.display(),
                    describe_io_error(&e)
                )),
                Ok(m) if m.is_file() => Ok(target),
                Ok(_) => Err(format!(
                    "{} is a symlink to {}, which is not a regular file; refusing to follow it",
                    file.display(),
                    target.display()
                )),
            }
        }
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(format!("{} is not a regular file", file.display())),
    }
}

/// Refuses a path whose directories are not all real directories: a symlinked
/// directory anywhere in it (`/etc/default` → `/tmp/x`) would steer root's write to
/// wherever the link points. Each component is looked at without following it.
fn check_directories(dir: &Path) -> Result<(), String> {
    let mut at = PathBuf::new();
    for component in dir.components() {
        at.push(component);
        if component == Component::RootDir {
            continue;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&at)
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default();
                return Err(format!(
                    "{} is a symlink{to}: an environment file's directories must be real directories, not links; name the file by its real path",
                    at.display()
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory", at.display())),
            Err(e) => {
                return Err(format!(
                    "directory {}: {}",
                    at.display(),
                    describe_io_error(&e)
                ));
            }
        }
    }
    Ok(())
}

/// The content of the environment file, `None` when it does not exist.
pub fn read(path: &str) -> Result<Option<String>, String> {
    let file = resolve(path)?;
    let shown = file.display();
    // O_NOFOLLOW: the name resolved to a regular file a moment ago; a symlink swapped
    // in since then is refused rather than followed.
    let mut handle = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{shown}: {}", describe_io_error(&e))),
    };
    let mut bytes = Vec::new();
    handle
        .by_ref()
        .take(MAX_ENV_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {}", describe_io_error(&e)))?;
    if bytes.len() as u64 > MAX_ENV_FILE_BYTES {
        return Err(format!(
            "{shown} is larger than {MAX_ENV_FILE_BYTES} bytes; not an environment file"
        ));
    }
    if bytes.contains(&0) {
        return Err(format!("{shown} holds NUL bytes; not an environment file"));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{shown} is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_links_within_the_directory_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(dir.join("real"), "A=1\n").unwrap();
        std::fs::write(other.path().join("secret"), "S=1\n").unwrap();
        std::os::unix::fs::symlink("real", dir.join("inside")).unwrap();
        std::os::unix::fs::symlink(other.path().join("secret"), dir.join("outside")).unwrap();
        std::os::unix::fs::symlink("missing", dir.join("dangling")).unwrap();
        let p = |n: &str| dir.join(n).display().to_string();
        assert_eq!(resolve(&p("inside")).unwrap(), dir.join("real"));
        assert_eq!(read(&p("inside")).unwrap().as_deref(), Some("A=1\n"));
        assert!(
            read(&p("outside"))
                .unwrap_err()
                .contains("refusing to follow")
        );
        assert!(
            read(&p("dangling"))
                .unwrap_err()
                .contains("symlink to nowhere")
        );
        assert_eq!(read(&p("absent")).unwrap(), None);
        assert!(read("relative/x").unwrap_err().contains("absolute"));
        assert!(read(&format!("{}/../x", p("real"))).is_err());
        assert!(
            read(&dir.display().to_string())
                .unwrap_err()
                .contains("regular file")
        );
        assert!(read(&format!("{}/nodir/x", dir.display())).is_err());
        std::fs::write(dir.join("bin"), b"A=\0\n").unwrap();
        assert!(read(&p("bin")).unwrap_err().contains("NUL"));
        std::fs::write(dir.join("latin1"), b"A=\xe9\n").unwrap();
        assert!(read(&p("latin1")).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn symlinked_directories_anywhere_in_the_path_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(dir.join("real/sub")).unwrap();
        std::fs::write(dir.join("real/sub/env"), "A=1\n").unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("linked")).unwrap();
        std::os::unix::fs::symlink("sub", dir.join("real/linkedsub")).unwrap();
        let p = |n: &str| dir.join(n).display().to_string();
        assert_eq!(read(&p("real/sub/env")).unwrap().as_deref(), Some("A=1\n"));
        for through in ["linked/sub/env", "real/linkedsub/env", "linked/sub/new"] {
            let err = read(&p(through)).unwrap_err();
            assert!(err.contains("is a symlink"), "{through}: {err}");
        }
        // A link to a link, even within the directory, is not followed.
        std::os::unix::fs::symlink("env", dir.join("real/sub/one")).unwrap();
        std::os::unix::fs::symlink("one", dir.join("real/sub/two")).unwrap();
        assert_eq!(
            resolve(&p("real/sub/one")).unwrap(),
            dir.join("real/sub/env")
        );
        assert!(
            read(&p("real/sub/two"))
                .unwrap_err()
                .contains("not a regular file")
        );
        // `sub/../sub/env` style targets are refused rather than normalised.
        std::os::unix::fs::symlink("../sub/env", dir.join("real/sub/up")).unwrap();
        assert!(read(&p("real/sub/up")).unwrap_err().contains("refusing"));
    }
}
