//! The layout of a model repository's top tree: `code/`, `params/`, `data/train/`,
//! `data/validation/`, each versioned on its own and shared by id when unchanged.

use std::collections::BTreeMap;

use agigit_hash::ObjectId;

use crate::object::{EntryMode, NameError, Tree, TreeEntry};
use crate::store::{Find, FindError, FindExt, Write, WriteError, WriteExt};

/// The code part's name.
pub const CODE: &str = "code";
/// The parameters part's name.
pub const PARAMS: &str = "params";
/// The data directory's name.
pub const DATA: &str = "data";
/// The training data part's name, under `data/`.
pub const TRAIN: &str = "train";
/// The validation data part's name, under `data/`.
pub const VALIDATION: &str = "validation";

/// The four parts of a model, each a tree id (`None`: the part is empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModelParts {
    /// `code/`.
    pub code: Option<ObjectId>,
    /// `params/`.
    pub params: Option<ObjectId>,
    /// `data/train/`.
    pub train: Option<ObjectId>,
    /// `data/validation/`.
    pub validation: Option<ObjectId>,
}

/// One of a model's four parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// `code/`: configuration, tokenizer, scripts, everything not otherwise placed.
    Code,
    /// `params/`: safetensors files and their index.
    Params,
    /// `data/train/`.
    Train,
    /// `data/validation/`.
    Validation,
}

impl Part {
    /// All four, in tree order.
    pub const ALL: [Part; 4] = [Part::Code, Part::Params, Part::Train, Part::Validation];

    /// The part's name as `status` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Part::Code => "code",
            Part::Params => "params",
            Part::Train => "data/train",
            Part::Validation => "data/validation",
        }
    }

    /// The part `name` (as [`name`](Self::name) prints it).
    pub fn from_name(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == name)
    }

    /// This part's tree in `parts`.
    pub fn get(self, parts: &ModelParts) -> Option<ObjectId> {
        match self {
            Part::Code => parts.code,
            Part::Params => parts.params,
            Part::Train => parts.train,
            Part::Validation => parts.validation,
        }
    }

    /// Sets this part's tree in `parts`.
    pub fn set(self, parts: &mut ModelParts, id: Option<ObjectId>) {
        match self {
            Part::Code => parts.code = id,
            Part::Params => parts.params = id,
            Part::Train => parts.train = id,
            Part::Validation => parts.validation = id,
        }
    }

    /// Where a path inside this part (`/`-separated) lives in the working directory, relative to
    /// its root and `/`-separated.
    pub fn to_worktree(self, inner: &str) -> String {
        match self {
            Part::Code | Part::Params => inner.to_owned(),
            Part::Train => format!("data/train/{inner}"),
            Part::Validation => format!("data/validation/{inner}"),
        }
    }
}

/// Which part a working-directory path (`/`-separated, relative) belongs to, and its path there.
pub fn classify(rel: &str) -> (Part, &str) {
    if let Some(rest) = rel.strip_prefix("data/train/") {
        return (Part::Train, rest);
    }
    if let Some(rest) = rel.strip_prefix("data/validation/") {
        return (Part::Validation, rest);
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") {
        (Part::Params, rel)
    } else {
        (Part::Code, rel)
    }
}

fn subtree(tree: &Tree, name: &str) -> Option<ObjectId> {
    tree.get(name)
        .filter(|e| e.mode == EntryMode::Tree)
        .map(|e| e.id)
}

impl ModelParts {
    /// Reads the parts of the model tree `id`. Other entries are allowed and ignored.
    pub fn read<S: Find + ?Sized>(store: &S, id: &ObjectId) -> Result<Self, FindError> {
        let top = store.find_tree(id)?;
        let data = subtree(&top, DATA)
            .map(|d| store.find_tree(&d))
            .transpose()?;
        Ok(ModelParts {
            code: subtree(&top, CODE),
            params: subtree(&top, PARAMS),
            train: data.as_ref().and_then(|d| subtree(d, TRAIN)),
            validation: data.as_ref().and_then(|d| subtree(d, VALIDATION)),
        })
    }

    /// Writes the model tree for these parts and returns its id. Writing the same parts twice
    /// gives the same id; changing one part changes only the trees above it.
    pub fn write<S: Write + ?Sized>(&self, store: &S) -> Result<ObjectId, WriteError> {
        let entry = |name: &str, id: Option<ObjectId>| {
            id.map(|id| TreeEntry::new(name, EntryMode::Tree, id))
        };
        let data: Vec<TreeEntry> = [entry(TRAIN, self.train), entry(VALIDATION, self.validation)]
            .into_iter()
            .flatten()
            .collect();
        let data_id = if data.is_empty() {
            None
        } else {
            Some(store.write_tree(&tree_of(data))?)
        };
        let top: Vec<TreeEntry> = [
            entry(CODE, self.code),
            entry(PARAMS, self.params),
            entry(DATA, data_id),
        ]
        .into_iter()
        .flatten()
        .collect();
        store.write_tree(&tree_of(top))
    }
}

/// The names are constants above, valid and distinct.
fn tree_of(entries: Vec<TreeEntry>) -> Tree {
    Tree::new(entries).unwrap_or_default()
}

/// Why [`ModelBuilder`] refused a path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The path was given twice, or as a file and as a directory above another file.
    #[error("{path}: given twice, or as both a file and a directory")]
    Clash {
        /// The working-directory path.
        path: String,
    },
    /// A component of the path is not a name a tree may hold.
    #[error("{path}: {source}")]
    Name {
        /// The working-directory path.
        path: String,
        /// Which rule the component breaks.
        #[source]
        source: NameError,
    },
    /// Writing a tree failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// One directory while it is built: name → file or subdirectory.
type Dir = BTreeMap<String, Node>;

#[derive(Debug)]
enum Node {
    Leaf(EntryMode, ObjectId),
    Dir(Dir),
}

/// Builds a model's trees from its files: each working-directory path (`/`-separated, relative)
/// goes to its part by [`classify`], with the mode and id of what was stored for it; then
/// [`write`](Self::write) writes each directory's tree, each part's, and the model tree. Pure:
/// it reads nothing, and writes only to the store it is given.
#[derive(Debug, Default)]
pub struct ModelBuilder {
    parts: BTreeMap<Part, Dir>,
}

impl ModelBuilder {
    /// A builder with no files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the file at working-directory path `rel`.
    ///
    /// # Errors
    /// [`BuildError::Name`] for a component a tree may not hold (empty, `.`, `..`, …);
    /// [`BuildError::Clash`] when `rel` was added already or passes through a file added before.
    pub fn add(&mut self, rel: &str, mode: EntryMode, id: ObjectId) -> Result<(), BuildError> {
        let (part, inner) = classify(rel);
        let clash = || BuildError::Clash {
            path: rel.to_owned(),
        };
        // Every name is checked before anything is added, so a refused path leaves no trace
        // (a clash is found only at a node that exists, before any is made).
        let count = inner.split('/').count();
        for (i, name) in inner.split('/').enumerate() {
            let as_mode = if i + 1 == count {
                mode
            } else {
                EntryMode::Tree
            };
            crate::object::check_entry_name(name, as_mode).map_err(|source| BuildError::Name {
                path: rel.to_owned(),
                source,
            })?;
        }
        let (dirs, leaf) = inner.rsplit_once('/').unwrap_or(("", inner));
        let mut dir = self.parts.entry(part).or_default();
        for name in dirs.split('/').filter(|_| !dirs.is_empty()) {
            let node = dir
                .entry(name.to_owned())
                .or_insert_with(|| Node::Dir(Dir::new()));
            dir = match node {
                Node::Dir(sub) => sub,
                Node::Leaf(..) => return Err(clash()),
            };
        }
        if dir.contains_key(leaf) {
            return Err(clash());
        }
        dir.insert(leaf.to_owned(), Node::Leaf(mode, id));
        Ok(())
    }

    /// Writes every tree and returns the model tree's id. The same files give the same id.
    ///
    /// # Errors
    /// [`BuildError::Write`] when the store fails.
    pub fn write<S: Write + ?Sized>(&self, store: &S) -> Result<ObjectId, BuildError> {
        let mut model = ModelParts::default();
        for (part, dir) in &self.parts {
            part.set(&mut model, Some(write_dir(store, dir)?));
        }
        Ok(model.write(store)?)
    }
}

fn write_dir<S: Write + ?Sized>(store: &S, dir: &Dir) -> Result<ObjectId, BuildError> {
    let mut entries = Vec::with_capacity(dir.len());
    for (name, node) in dir {
        let (mode, id) = match node {
            Node::Leaf(mode, id) => (*mode, *id),
            Node::Dir(sub) => (EntryMode::Tree, write_dir(store, sub)?),
        };
        entries.push(TreeEntry::new(name.clone(), mode, id));
    }
    // Names were checked as they were added, and a map holds each once.
    let tree = Tree::new(entries).map_err(|source| BuildError::Name {
        path: String::new(),
        source,
    })?;
    Ok(store.write_tree(&tree)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Kind;
    use crate::store::MemoryStore;

    fn blob(store: &MemoryStore, text: &str) -> ObjectId {
        store.write_buf(Kind::Blob, text.as_bytes()).expect("blob")
    }

    /// The id at `path` below tree `id`.
    fn at(store: &MemoryStore, id: ObjectId, path: &str) -> Option<ObjectId> {
        path.split('/').try_fold(id, |tree, name| {
            store.find_tree(&tree).ok()?.get(name).map(|e| e.id)
        })
    }

    #[test]
    fn files_go_to_their_parts_and_directories_and_order_does_not_matter() {
        let store = MemoryStore::new();
        let files = [
            ("train.py", EntryMode::Executable, blob(&store, "train")),
            (
                "src/model/layers.py",
                EntryMode::File,
                blob(&store, "layers"),
            ),
            ("model.safetensors", EntryMode::Tree, blob(&store, "params")),
            (
                "data/train/shard-0.jsonl",
                EntryMode::File,
                blob(&store, "t"),
            ),
            (
                "data/validation/held/out.jsonl",
                EntryMode::File,
                blob(&store, "v"),
            ),
        ];
        let mut forward = ModelBuilder::new();
        for (rel, mode, id) in files {
            forward.add(rel, mode, id).expect("add");
        }
        let mut backward = ModelBuilder::new();
        for (rel, mode, id) in files.iter().rev() {
            backward.add(rel, *mode, *id).expect("add");
        }
        let top = forward.write(&store).expect("write");
        assert_eq!(backward.write(&store).expect("write"), top);

        let parts = ModelParts::read(&store, &top).expect("parts");
        let code = parts.code.expect("code part");
        assert_eq!(at(&store, code, "train.py"), Some(files[0].2));
        assert_eq!(at(&store, code, "src/model/layers.py"), Some(files[1].2));
        let params = parts.params.expect("params part");
        let entry = store.find_tree(&params).expect("params tree");
        assert_eq!(
            entry.get("model.safetensors").map(|e| e.mode),
            Some(EntryMode::Tree)
        );
        assert_eq!(
            at(&store, parts.train.expect("train"), "shard-0.jsonl"),
            Some(files[3].2)
        );
        assert_eq!(
            at(
                &store,
                parts.validation.expect("validation"),
                "held/out.jsonl"
            ),
            Some(files[4].2)
        );
        // The parts hold only their own files.
        assert_eq!(at(&store, code, "data"), None);
        assert_eq!(at(&store, code, "model.safetensors"), None);
    }

    #[test]
    fn a_path_given_twice_or_through_a_file_is_refused() {
        let store = MemoryStore::new();
        let id = blob(&store, "x");
        for (first, second) in [("a/b", "a/b"), ("a/b", "a/b/c"), ("a/b/c", "a/b")] {
            let mut b = ModelBuilder::new();
            b.add(first, EntryMode::File, id).expect("first");
            match b.add(second, EntryMode::File, id) {
                Err(BuildError::Clash { path }) => assert_eq!(path, second),
                other => panic!("{first} then {second}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_path_with_a_component_no_tree_may_hold_is_refused() {
        let store = MemoryStore::new();
        let id = blob(&store, "x");
        let mut b = ModelBuilder::new();
        for rel in [
            "a//b",
            "../escape",
            "a/./b",
            "a/../../b",
            "/abs",
            "trailing/",
            "",
        ] {
            match b.add(rel, EntryMode::File, id) {
                Err(BuildError::Name { path, .. }) => assert_eq!(path, rel),
                other => panic!("{rel:?}: {other:?}"),
            }
        }
        // The refusals left nothing behind (not even the directories before the bad name).
        let top = b.write(&store).expect("write");
        assert_eq!(
            ModelParts::read(&store, &top).expect("parts"),
            ModelParts::default()
        );
    }
}
