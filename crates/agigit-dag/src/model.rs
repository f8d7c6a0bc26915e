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
