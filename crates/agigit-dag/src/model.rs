//! The layout of a model repository's top tree: `code/`, `params/`, `data/train/`,
//! `data/validation/`, each versioned on its own and shared by id when unchanged.

use agigit_hash::ObjectId;

use crate::object::{EntryMode, Tree, TreeEntry};
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
