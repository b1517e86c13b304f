//! Tidy, in the manner of rust-analyzer's `tidy` tests: the tree and
//! `docs/ARCHITECTURE.md` agree, and the architecture's rules hold as Cargo
//! facts (`cargo metadata`), so the map cannot drift from the code.
//!
//! How the doc is read (generically, so a moved file only needs its row):
//! a *module table* is a Markdown table whose first header cell is
//! `module`; it belongs to the crate whose source directory the nearest
//! heading above it names in parentheses, e.g. "### `hl7` (gateway/hl7/src)"
//! or "## The x12 crate (gateway/x12)" (`/src` is implied). Every
//! backticked name in a row's first cell is a path below that `src/`: a
//! file (`source/poller.rs`) or a directory (`trust/`, which covers
//! everything in it). The *crate table* is the one under "## Crates".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo_root() -> PathBuf {
    test_support::paths::repo_root()
}

const DOC: &str = "docs/ARCHITECTURE.md";

/// One workspace member, as Cargo sees it.
struct Crate {
    name: String,
    /// Relative to the repository root, e.g. "gateway/hl7".
    path: String,
    /// (dependency name, kind: "normal", "dev" or "build").
    deps: Vec<(String, String)>,
    /// Names of the integration-test targets.
    tests: Vec<String>,
}

fn workspace() -> Vec<Crate> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let out = test_support::run::succeeds(
        Command::new(cargo)
            .args([
                "metadata",
                "--no-deps",
                "--offline",
                "--format-version",
                "1",
            ])
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml")),
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap();
            Crate {
                name: p["name"].as_str().unwrap().to_string(),
                path: dir.strip_prefix(&root).unwrap_or(dir).display().to_string(),
                deps: p["dependencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                        (d["name"].as_str().unwrap().to_string(), kind)
                    })
                    .collect(),
                tests: p["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "test"))
                    .map(|t| t["name"].as_str().unwrap().to_string())
                    .collect(),
            }
        })
        .collect()
}

/// The backticked names of a table cell, e.g. "`a.rs`, `b/`" → [a.rs, b/].
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The cells of a table row (without the outer pipes).
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// The source directory a heading names in parentheses, if any:
/// "### `hl7` (gateway/hl7/src): pure" → "gateway/hl7/src".
fn heading_src(heading: &str) -> Option<String> {
    heading
        .split('(')
        .skip(1)
        .filter_map(|s| s.split(')').next())
        .find(|p| p.contains('/') && !p.contains(' '))
        .map(|p| {
            let p = p.trim_end_matches('/');
            if p.ends_with("/src") {
                p.to_string()
            } else {
                format!("{p}/src")
            }
        })
}

/// What the doc says: per source directory, the names its module tables
/// give (with the doc line of each); and the crate table's rows.
struct Doc {
    modules: BTreeMap<String, Vec<(String, usize)>>,
    /// crate name → (path, workspace dependencies, doc line).
    crates: BTreeMap<String, (String, BTreeSet<String>, usize)>,
    problems: Vec<String>,
}

fn read_doc(text: &str) -> Doc {
    let mut doc = Doc {
        modules: BTreeMap::new(),
        crates: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut heading = String::new();
    let mut table: Option<String> = None; // the first header cell of the table being read
    let mut header_row = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_string();
            table = None;
            continue;
        }
        if !line.trim_start().starts_with('|') {
            table = None;
            continue;
        }
        let row = cells(line);
        if table.is_none() {
            table = Some(row[0].clone());
            header_row = true;
            continue;
        }
        if header_row {
            header_row = false; // the |---| separator
            continue;
        }
        match table.as_deref() {
            Some("module") => match heading_src(&heading) {
                Some(src) => {
                    let names = backticked(&row[0]);
                    if names.is_empty() {
                        doc.problems
                            .push(format!("{DOC}:{n}: a module row without a `name`"));
                    }
                    let entry = doc.modules.entry(src).or_default();
                    entry.extend(names.into_iter().map(|m| (m, n)));
                }
                None => doc.problems.push(format!(
                    "{DOC}:{n}: a module table under \"{heading}\", which names no crate \
                     source directory in parentheses, e.g. (gateway/hl7/src)"
                )),
            },
            Some("crate") if heading == "Crates" && row.len() >= 3 => {
                let Some(name) = backticked(&row[0]).into_iter().next() else {
                    doc.problems
                        .push(format!("{DOC}:{n}: a crate row without a `name`"));
                    continue;
                };
                let path = backticked(&row[1]).into_iter().next().unwrap_or_default();
                // "none (its tests use `hl7`)": what is in parentheses is a remark.
                let deps_cell: String = row[2].split('(').next().unwrap_or("").to_string();
                let deps = backticked(&deps_cell).into_iter().collect();
                doc.crates.insert(name, (path, deps, n));
            }
            _ => {}
        }
    }
    doc
}

/// Every file below `dir`, relative to it ("a.rs", "cli/mod.rs").
fn files_below(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let r = rel.join(e.file_name());
        if p.is_dir() {
            files_below(&p, &r, out);
        } else {
            out.push(r);
        }
    }
}

/// The module tables against each crate's `src/`.
fn module_problems(doc: &Doc, crates: &[Crate]) -> Vec<String> {
    let root = repo_root();
    let mut problems = Vec::new();
    for c in crates {
        let src = format!("{}/src", c.path);
        let Some(named) = doc.modules.get(&src) else {
            problems.push(format!(
                "{DOC}: no module table for crate `{}` ({src}): add a heading naming ({src}) \
                 and a `| module | job |` table",
                c.name
            ));
            continue;
        };
        let src_dir = root.join(&src);
        for (name, line) in named {
            let p = src_dir.join(name.trim_end_matches('/'));
            let what = if name.ends_with('/') {
                p.is_dir().then_some(()).ok_or("no such directory")
            } else if p.is_dir() {
                Err("a directory: name it with a trailing slash")
            } else {
                p.is_file().then_some(()).ok_or("no such file")
            };
            if let Err(why) = what {
                problems.push(format!(
                    "{DOC}:{line}: `{name}` under {src}: {why} (fix or remove the row)"
                ));
            }
        }
        let mut files = Vec::new();
        files_below(&src_dir, Path::new(""), &mut files);
        files.sort();
        for f in files {
            let f = f.display().to_string();
            let covered = named.iter().any(|(name, _)| {
                name == &f || (name.ends_with('/') && f.starts_with(name.as_str()))
            });
            if !covered {
                problems.push(format!(
                    "{src}/{f} exists but no module table of {DOC} names it: add a row \
                     under the heading that names ({src})"
                ));
            }
        }
    }
    problems
}

/// The crate table against the workspace members and their dependencies.
fn crate_problems(doc: &Doc, crates: &[Crate]) -> Vec<String> {
    let mut problems = Vec::new();
    let members: BTreeSet<&str> = crates.iter().map(|c| c.name.as_str()).collect();
    for c in crates {
        let Some((path, deps, line)) = doc.crates.get(&c.name) else {
            problems.push(format!(
                "{DOC}: the crate table (## Crates) has no row for `{}` ({})",
                c.name, c.path
            ));
            continue;
        };
        if path != &c.path {
            problems.push(format!(
                "{DOC}:{line}: `{}` is at `{}`, not `{path}`",
                c.name, c.path
            ));
        }
        let actual: BTreeSet<String> = workspace_deps(c, &members, "normal");
        if &actual != deps {
            problems.push(format!(
                "{DOC}:{line}: `{}` depends on the workspace crates {actual:?} (Cargo.toml), \
                 the table says {deps:?}",
                c.name
            ));
        }
    }
    for (name, (_, _, line)) in &doc.crates {
        if !members.contains(name.as_str()) {
            problems.push(format!(
                "{DOC}:{line}: `{name}` is not a workspace member (remove the row)"
            ));
        }
    }
    problems
}

/// The workspace crates `c` depends on with `kind` ("normal", "dev").
fn workspace_deps(c: &Crate, members: &BTreeSet<&str>, kind: &str) -> BTreeSet<String> {
    c.deps
        .iter()
        .filter(|(name, k)| k == kind && members.contains(name.as_str()))
        .map(|(name, _)| name.clone())
        .collect()
}

fn find<'a>(crates: &'a [Crate], name: &str) -> &'a Crate {
    crates
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no workspace crate `{name}`"))
}

#[test]
fn architecture_module_tables_name_every_module_and_nothing_else() {
    let text = std::fs::read_to_string(repo_root().join(DOC)).unwrap();
    let doc = read_doc(&text);
    let crates = workspace();
    let mut problems = doc.problems.clone();
    problems.extend(module_problems(&doc, &crates));
    problems.extend(crate_problems(&doc, &crates));
    assert!(
        problems.is_empty(),
        "{DOC} does not match the tree:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn the_doc_reader_finds_what_is_missing_and_what_is_gone() {
    // The checker must be able to fail: a table that names a file that
    // does not exist and misses one that does.
    let text =
        "# x\n\n## Crates\n\n| crate | path | depends on (workspace) |\n| --- | --- | --- |\n\
                | `hl7` | `gateway/hl7` | `journal` (really) |\n\n\
                ### `hl7` (gateway/hl7/src)\n\n| module | job |\n| --- | --- |\n\
                | `lib.rs`, `nowhere.rs` | x |\n| `parse.rs/` | y |\n";
    let doc = read_doc(text);
    assert!(doc.problems.is_empty(), "{:?}", doc.problems);
    assert_eq!(
        doc.crates["hl7"],
        (
            "gateway/hl7".to_string(),
            BTreeSet::from(["journal".to_string()]),
            7
        )
    );
    let hl7 = Crate {
        name: "hl7".into(),
        path: "gateway/hl7".into(),
        deps: vec![],
        tests: vec![],
    };
    let problems = module_problems(&doc, std::slice::from_ref(&hl7));
    let joined = problems.join("\n");
    assert!(
        joined.contains("`nowhere.rs` under gateway/hl7/src: no such file"),
        "{joined}"
    );
    assert!(
        joined.contains("`parse.rs/` under gateway/hl7/src: no such directory"),
        "{joined}"
    );
    assert!(
        joined.contains("gateway/hl7/src/mllp.rs exists but no module table"),
        "{joined}"
    );
    assert!(!joined.contains("src/lib.rs exists"), "{joined}");
    let problems = crate_problems(&doc, &[hl7]).join("\n");
    assert!(
        problems.contains("the table says {\"journal\"}"),
        "{problems}"
    );
}

#[test]
fn the_crate_rules_hold_as_cargo_facts() {
    let crates = workspace();
    let members: BTreeSet<&str> = crates.iter().map(|c| c.name.as_str()).collect();
    let normal = |name: &str| workspace_deps(find(&crates, name), &members, "normal");
    let none = BTreeSet::new();
    // The pure core reaches neither the journal, sockets nor the daemon.
    assert_eq!(normal("hl7"), none, "hl7 depends on no workspace crate");
    assert_eq!(
        normal("fhir-map"),
        BTreeSet::from(["hl7".to_string()]),
        "fhir-map's only workspace dependency is hl7"
    );
    assert_eq!(normal("x12"), none, "x12 depends on no workspace crate");
    // The journal knows nothing of HL7 or of the gateway.
    assert_eq!(
        normal("journal"),
        none,
        "journal depends on no workspace crate"
    );
    for c in &crates {
        // Only the journal talks to sled; hw-tests holds the evidence
        // about sled itself (its child process opens sled directly).
        if c.deps.iter().any(|(d, _)| d == "sled") {
            assert!(
                c.name == "journal" || c.name == "hw-tests",
                "{} depends on sled: only journal may (and hw-tests' sled evidence)",
                c.name
            );
        }
        // Test helpers never reach a product.
        for (d, kind) in &c.deps {
            if d == "test-support" {
                assert_eq!(kind, "dev", "{} depends on test-support as {kind}", c.name);
            }
        }
        // One integration-test binary per crate, tests/it/main.rs, so
        // shared helpers compile once (hw-tests keeps its lossyfs and
        // sled evidence binaries, and the qemu tests).
        if c.name != "hw-tests" {
            assert!(
                c.tests.is_empty() || c.tests == ["it"],
                "{} has the test binaries {:?}: move them into tests/it/ as modules",
                c.name,
                c.tests
            );
        }
    }
}
