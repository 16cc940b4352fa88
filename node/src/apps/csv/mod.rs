//! Parser for the CSV files of WeCom's bulk directory sync (`batch/syncuser`,
//! `batch/replaceuser`, `batch/replaceparty`).
//!
//! Files must be UTF-8, with or without a BOM: WeCom's own templates are
//! UTF-8, and guessing GBK would silently garble names. A header that is not
//! UTF-8 is a [`CsvError::NotUtf8`] telling the admin to save as "CSV UTF-8".
//!
//! Columns are found by header name, not position, because HR exports
//! reorder and rename them. Parsing is pure, bounded and resumable: a job
//! stores the [`UserColumns`]/[`PartyColumns`] and a [`Cursor`] in its
//! replicated record and parses ~2,000 rows per step, so a new leader can
//! carry on where the old one stopped and every node gets identical rows.

use std::str::FromStr;

use csv::{ByteRecord, Reader, ReaderBuilder};
use serde::{Deserialize, Serialize};

/// Longest cell accepted (after trimming): rows end up in replicated
/// commands, so one absurd cell must not bloat the log.
pub const MAX_CELL: usize = 1024;
/// Longest header name kept in errors and in [`UserColumns::ignored`].
const MAX_NAME: usize = 64;
/// Most ignored column names kept: the list lives in the job record.
const MAX_IGNORED: usize = 64;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A position in the file between records: `line` is the 1-based line of
/// byte `offset`. Only cursors from this module are valid (a hand-made one
/// may land inside a quoted cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub offset: u64,
    pub line: u64,
}

/// Column indices of a user file. Optional columns are `None` when absent.
/// At most one of `enable` (1 = enabled) and `disable` (1 = disabled) is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserColumns {
    pub userid: u32,
    pub name: u32,
    pub mobile: Option<u32>,
    pub email: Option<u32>,
    pub department: Option<u32>,
    pub position: Option<u32>,
    pub gender: Option<u32>,
    pub leader: Option<u32>,
    pub order: Option<u32>,
    pub alias: Option<u32>,
    pub address: Option<u32>,
    pub telephone: Option<u32>,
    pub enable: Option<u32>,
    pub disable: Option<u32>,
    pub main_department: Option<u32>,
    /// Header names that matched nothing, reported to the admin (capped).
    pub ignored: Vec<String>,
    /// Where the first data row may start.
    pub data_start: Cursor,
}

/// Column indices of a party (department) file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyColumns {
    pub name: u32,
    pub id: u32,
    pub parentid: u32,
    pub order: Option<u32>,
    pub ignored: Vec<String>,
    pub data_start: Cursor,
}

/// Anything with a data start, so [`count_rows`] serves both file kinds.
pub trait Columns {
    fn data_start(&self) -> Cursor;
}
impl Columns for UserColumns {
    fn data_start(&self) -> Cursor {
        self.data_start
    }
}
impl Columns for PartyColumns {
    fn data_start(&self) -> Cursor {
        self.data_start
    }
}

/// One user row. `None` means "column absent or cell empty": an incremental
/// sync (`syncuser`) then leaves that field unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub userid: String,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub departments: Option<Vec<u64>>,
    pub position: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    pub gender: Option<u8>,
    /// One per department (a single value in the file is spread to all).
    pub leader: Option<Vec<bool>>,
    /// One per department (a single value in the file is spread to all).
    pub order: Option<Vec<i64>>,
    pub alias: Option<String>,
    pub address: Option<String>,
    pub telephone: Option<String>,
    pub enabled: Option<bool>,
    pub main_department: Option<u64>,
}

/// One department row. `parentid` is `None` only for the root (id 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyRow {
    pub id: u64,
    pub name: String,
    pub parentid: Option<u64>,
    pub order: Option<i64>,
}

/// Why one row was rejected; the rest of the file still applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based line where the record starts.
    pub line: u64,
    /// The userid (or party id) cell as written, possibly empty.
    pub key: String,
    /// Every problem found in the row, joined with "; ".
    pub message: String,
}

/// One data record, parsed or rejected, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedRow<T> {
    pub line: u64,
    pub result: Result<T, RowError>,
}

/// A step's worth of rows and where the next step starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk<T> {
    pub rows: Vec<ParsedRow<T>>,
    pub next: Cursor,
    /// No data records remain after `next`.
    pub done: bool,
}

/// File-level failures; row problems are [`RowError`]s instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the file has no header row")]
    Empty,
    #[error(
        "the header row is not valid UTF-8 (column {column}); files must be UTF-8: save the file as \"CSV UTF-8\""
    )]
    NotUtf8 { column: usize },
    #[error("the header has no {} column; columns found: {}", missing.join(", "), found.join(", "))]
    MissingColumns {
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error("columns {first:?} and {second:?} both mean {field}")]
    DuplicateColumn {
        field: String,
        first: String,
        second: String,
    },
    #[error("offset {offset} is not a row boundary of this file")]
    BadCursor { offset: u64 },
    #[error("reading CSV: {0}")]
    Read(String),
}

type Fields = [(&'static str, &'static [&'static str])];

/// Field name and accepted header names (compared after [`normalize`]).
const USER_FIELDS: &Fields = &[
    ("userid", &["帐号", "账号", "userid"]),
    ("name", &["姓名", "name"]),
    ("mobile", &["手机号", "手机", "mobile"]),
    ("email", &["邮箱", "email"]),
    ("department", &["所在部门", "部门", "department"]),
    ("position", &["职位", "职务", "position"]),
    ("gender", &["性别", "gender"]),
    (
        "is_leader_in_dept",
        &["是否部门负责人", "部门负责人", "is_leader_in_dept"],
    ),
    ("order", &["排序", "order"]),
    ("alias", &["别名", "alias"]),
    ("address", &["地址", "address"]),
    ("telephone", &["座机", "telephone"]),
    ("enable", &["启用", "enable"]),
    ("disable", &["禁用", "disable"]),
    ("main_department", &["主部门", "main_department"]),
];
const PARTY_FIELDS: &Fields = &[
    ("name", &["部门名称", "name"]),
    ("id", &["部门id", "id"]),
    ("parentid", &["父部门id", "parentid"]),
    ("order", &["排序", "order"]),
];

/// Parses the header of a user file (`batch/syncuser`, `batch/replaceuser`).
pub fn user_header(bytes: &[u8]) -> Result<UserColumns, CsvError> {
    let h = header(bytes, USER_FIELDS, &[0, 1])?;
    let s = &h.slots;
    if let (Some(e), Some(d)) = (s[12], s[13]) {
        return Err(CsvError::DuplicateColumn {
            field: "enable/disable".into(),
            first: h.found[e.min(d) as usize].clone(),
            second: h.found[e.max(d) as usize].clone(),
        });
    }
    Ok(UserColumns {
        userid: s[0].unwrap_or_default(),
        name: s[1].unwrap_or_default(),
        mobile: s[2],
        email: s[3],
        department: s[4],
        position: s[5],
        gender: s[6],
        leader: s[7],
        order: s[8],
        alias: s[9],
        address: s[10],
        telephone: s[11],
        enable: s[12],
        disable: s[13],
        main_department: s[14],
        ignored: h.ignored,
        data_start: h.data_start,
    })
}

/// Parses the header of a party file (`batch/replaceparty`).
pub fn party_header(bytes: &[u8]) -> Result<PartyColumns, CsvError> {
    let h = header(bytes, PARTY_FIELDS, &[0, 1, 2])?;
    let s = &h.slots;
    Ok(PartyColumns {
        name: s[0].unwrap_or_default(),
        id: s[1].unwrap_or_default(),
        parentid: s[2].unwrap_or_default(),
        order: s[3],
        ignored: h.ignored,
        data_start: h.data_start,
    })
}

/// Parses up to `max_rows` user rows from `from` (the columns' `data_start`
/// or a previous chunk's `next`). `max_rows` 0 counts as 1 so a loop over
/// chunks always advances. Same bytes and cursor, same chunk.
pub fn user_rows(
    bytes: &[u8],
    cols: &UserColumns,
    from: Cursor,
    max_rows: usize,
) -> Result<Chunk<UserRow>, CsvError> {
    chunk(bytes, cols.data_start, from, max_rows, cols.userid, |c| {
        user_row(c, cols)
    })
}

/// Parses up to `max_rows` party rows from `from`; see [`user_rows`].
pub fn party_rows(
    bytes: &[u8],
    cols: &PartyColumns,
    from: Cursor,
    max_rows: usize,
) -> Result<Chunk<PartyRow>, CsvError> {
    chunk(bytes, cols.data_start, from, max_rows, cols.id, |c| {
        party_row(c, cols)
    })
}

/// Number of data records (blank lines and all-empty records excluded):
/// exactly how many rows the chunks will yield, for progress reporting.
pub fn count_rows<C: Columns>(bytes: &[u8], cols: &C) -> u64 {
    let base = usize::try_from(cols.data_start().offset).unwrap_or(usize::MAX);
    if base > bytes.len() {
        return 0;
    }
    let mut rdr = reader(bytes, base);
    let mut rec = ByteRecord::new();
    let mut n = 0;
    while let Ok(Some(_)) = next_record(&mut rdr, bytes, base, &mut rec) {
        n += 1;
    }
    n
}

struct Header {
    slots: Vec<Option<u32>>,
    ignored: Vec<String>,
    found: Vec<String>,
    data_start: Cursor,
}

fn header(bytes: &[u8], fields: &Fields, required: &[usize]) -> Result<Header, CsvError> {
    let base = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    let mut rdr = reader(bytes, base);
    let mut rec = ByteRecord::new();
    next_record(&mut rdr, bytes, base, &mut rec)?.ok_or(CsvError::Empty)?;
    let mut h = Header {
        slots: vec![None; fields.len()],
        ignored: Vec::new(),
        found: Vec::new(),
        data_start: Cursor { offset: 0, line: 1 },
    };
    for (i, cell) in rec.iter().enumerate() {
        let raw = std::str::from_utf8(cell).map_err(|_| CsvError::NotUtf8 { column: i + 1 })?;
        let shown = clip(raw.trim_start_matches('\u{feff}').trim(), MAX_NAME);
        h.found.push(shown.clone());
        let key = normalize(raw);
        if key.is_empty() {
            continue;
        }
        let col = u32::try_from(i).unwrap_or(u32::MAX);
        match fields
            .iter()
            .position(|(_, names)| names.contains(&key.as_str()))
        {
            Some(f) => match h.slots[f] {
                Some(prev) => {
                    return Err(CsvError::DuplicateColumn {
                        field: fields[f].0.into(),
                        first: h.found[prev as usize].clone(),
                        second: shown,
                    });
                }
                None => h.slots[f] = Some(col),
            },
            None if h.ignored.len() < MAX_IGNORED => h.ignored.push(shown),
            None => {}
        }
    }
    let missing: Vec<String> = required
        .iter()
        .filter(|&&f| h.slots[f].is_none())
        .map(|&f| format!("{} ({})", fields[f].0, fields[f].1[0]))
        .collect();
    if !missing.is_empty() {
        let found = h.found.into_iter().filter(|f| !f.is_empty()).collect();
        return Err(CsvError::MissingColumns { missing, found });
    }
    let offset = base + pos(&rdr);
    h.data_start = Cursor {
        offset: offset as u64,
        line: 1 + newlines(&bytes[..offset]),
    };
    Ok(h)
}

/// Header text to match key: drop BOM, spaces, a trailing "(explanation)"
/// and `*` required-markers; lowercase for the English names.
fn normalize(raw: &str) -> String {
    let s = raw.trim_start_matches('\u{feff}').trim();
    let s = s.split(['(', '（']).next().unwrap_or(s);
    s.trim().trim_matches('*').trim().to_lowercase()
}

fn reader(bytes: &[u8], base: usize) -> Reader<&[u8]> {
    ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[base..])
}

/// Reader position relative to where it started.
fn pos(rdr: &Reader<&[u8]>) -> usize {
    usize::try_from(rdr.position().byte()).unwrap_or(usize::MAX)
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Reads the next record that has a non-blank cell and returns the absolute
/// offset where its text begins. The csv crate skips empty lines but records
/// the position before them, hence the skip over line terminators.
fn next_record(
    rdr: &mut Reader<&[u8]>,
    bytes: &[u8],
    base: usize,
    rec: &mut ByteRecord,
) -> Result<Option<usize>, CsvError> {
    loop {
        if !rdr
            .read_byte_record(rec)
            .map_err(|e| CsvError::Read(e.to_string()))?
        {
            return Ok(None);
        }
        if rec.iter().all(|c| c.trim_ascii().is_empty()) {
            continue;
        }
        let rel = rec.position().map_or(0, |p| p.byte());
        let mut at = base + usize::try_from(rel).unwrap_or(usize::MAX);
        while matches!(bytes.get(at), Some(b'\r' | b'\n')) {
            at += 1;
        }
        return Ok(Some(at));
    }
}

/// Parses records from `from` until `max_rows` rows are out or the file
/// ends. It reads one record past the quota so that `done` is exact.
fn chunk<T>(
    bytes: &[u8],
    start: Cursor,
    from: Cursor,
    max_rows: usize,
    key_col: u32,
    parse: impl Fn(&mut Cells<'_>) -> T,
) -> Result<Chunk<T>, CsvError> {
    let bad = CsvError::BadCursor {
        offset: from.offset,
    };
    let base = usize::try_from(from.offset).map_err(|_| bad.clone())?;
    let boundary = from.offset == start.offset
        || base == bytes.len()
        || matches!(
            base.checked_sub(1).and_then(|i| bytes.get(i)),
            Some(b'\r' | b'\n')
        );
    if from.offset < start.offset || base > bytes.len() || from.line < start.line || !boundary {
        return Err(bad);
    }
    let mut rdr = reader(bytes, base);
    let mut rec = ByteRecord::new();
    // Line numbers by counting `\n` forward from the cursor: cheap, and
    // right for quoted cells spanning lines.
    let (mut off, mut line) = (base, from.line);
    let mut line_at = |to: usize| {
        if to > off {
            line += newlines(&bytes[off..to]);
            off = to;
        }
        line
    };
    let mut rows = Vec::new();
    let (end, done) = loop {
        let before = base + pos(&rdr);
        let Some(at) = next_record(&mut rdr, bytes, base, &mut rec)? else {
            break (bytes.len(), true);
        };
        if rows.len() >= max_rows.max(1) {
            break (before, false);
        }
        let line = line_at(at);
        let mut cells = Cells {
            rec: &rec,
            errors: Vec::new(),
        };
        let row = parse(&mut cells);
        let result = if cells.errors.is_empty() {
            Ok(row)
        } else {
            let key = rec.get(key_col as usize).unwrap_or_default();
            Err(RowError {
                line,
                key: clip(String::from_utf8_lossy(key).trim(), 128),
                message: cells.errors.join("; "),
            })
        };
        rows.push(ParsedRow { line, result });
    };
    let next = Cursor {
        offset: end as u64,
        line: line_at(end),
    };
    Ok(Chunk { rows, next, done })
}

/// Cell access for one record, collecting every problem so the admin can
/// fix a row in one go.
struct Cells<'r> {
    rec: &'r ByteRecord,
    errors: Vec<String>,
}

impl Cells<'_> {
    /// Trimmed text; `None` if the column is absent, the cell empty or bad.
    fn text(&mut self, col: Option<u32>, label: &str) -> Option<String> {
        let raw = self.rec.get(col? as usize)?;
        let Ok(s) = std::str::from_utf8(raw) else {
            self.errors.push(format!("{label} is not valid UTF-8"));
            return None;
        };
        let s = s.trim();
        if s.len() > MAX_CELL {
            let n = s.len();
            self.errors
                .push(format!("{label} is {n} bytes long (at most {MAX_CELL})"));
            return None;
        }
        (!s.is_empty()).then(|| s.to_owned())
    }

    fn required(&mut self, col: u32, label: &str) -> String {
        let n = self.errors.len();
        self.text(Some(col), label).unwrap_or_else(|| {
            if self.errors.len() == n {
                self.errors.push(format!("{label} is empty"));
            }
            String::new()
        })
    }

    fn num<N: FromStr>(&mut self, s: &str, label: &str) -> Option<N> {
        let v = s.parse().ok();
        if v.is_none() {
            self.errors
                .push(format!("{label} {:?} is not a number", clip(s, 40)));
        }
        v
    }

    /// A department id: a number of at least 1.
    fn id(&mut self, s: &str, label: &str) -> Option<u64> {
        match self.num::<u64>(s, label)? {
            0 => {
                self.errors.push(format!("{label} \"0\" is not a valid id"));
                None
            }
            id => Some(id),
        }
    }

    fn flag(&mut self, s: &str, label: &str) -> Option<bool> {
        let v = match s.to_ascii_lowercase().as_str() {
            "1" | "是" | "true" | "yes" => Some(true),
            "0" | "否" | "false" | "no" => Some(false),
            _ => None,
        };
        if v.is_none() {
            self.errors
                .push(format!("{label} {:?} is not 0 or 1", clip(s, 40)));
        }
        v
    }

    /// A per-department list: one value spreads to every department,
    /// otherwise the counts must match. `depts_ok` is false when the
    /// department cell was bad: that error already explains the row.
    fn per_dept<V: Clone>(
        &mut self,
        col: Option<u32>,
        label: &str,
        (depts_ok, depts): (bool, Option<&[u64]>),
        item: fn(&mut Self, &str, &str) -> Option<V>,
    ) -> Option<Vec<V>> {
        let s = self.text(col, label)?;
        let n = self.errors.len();
        let vals: Vec<V> = list(&s).filter_map(|p| item(self, p, label)).collect();
        if !depts_ok || self.errors.len() > n {
            return None;
        }
        match (vals.len(), depts) {
            (0, _) => None,
            (_, None) => {
                self.errors
                    .push(format!("{label} is set but department is empty"));
                None
            }
            (1, Some(d)) => Some(vec![vals[0].clone(); d.len()]),
            (n, Some(d)) if n == d.len() => Some(vals),
            (n, Some(d)) => {
                let m = d.len();
                self.errors
                    .push(format!("{label} has {n} values for {m} departments"));
                None
            }
        }
    }
}

/// `;`-separated list (also `；`, and `,` inside a quoted cell); empty
/// items (a trailing `;`) are dropped.
fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split([';', '；', ',', '，'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

fn user_row(c: &mut Cells<'_>, cols: &UserColumns) -> UserRow {
    let userid = c.required(cols.userid, "userid");
    let name = c.required(cols.name, "name");
    let before = c.errors.len();
    let departments = c
        .text(cols.department, "department")
        .map(|s| {
            list(&s)
                .filter_map(|p| c.id(p, "department"))
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty());
    let depts = (c.errors.len() == before, departments.as_deref());
    let leader = c.per_dept(cols.leader, "is_leader_in_dept", depts, Cells::flag);
    let order = c.per_dept(cols.order, "order", depts, Cells::num::<i64>);
    let gender =
        c.text(cols.gender, "gender")
            .and_then(|s| match s.to_ascii_lowercase().as_str() {
                "0" | "未知" | "unknown" => Some(0),
                "1" | "男" | "male" => Some(1),
                "2" | "女" | "female" => Some(2),
                _ => {
                    let s = clip(&s, 40);
                    c.errors
                        .push(format!("gender {s:?} is not 1/男/male or 2/女/female"));
                    None
                }
            });
    let enabled = match c.text(cols.enable, "enable") {
        Some(s) => c.flag(&s, "enable"),
        None => c
            .text(cols.disable, "disable")
            .and_then(|s| c.flag(&s, "disable").map(|d| !d)),
    };
    let main_department = c
        .text(cols.main_department, "main_department")
        .and_then(|s| c.id(&s, "main_department"));
    if let (Some(m), Some(d)) = (main_department, &departments)
        && !d.contains(&m)
    {
        c.errors
            .push(format!("main_department {m} is not one of the departments"));
    }
    UserRow {
        userid,
        name,
        mobile: c.text(cols.mobile, "mobile"),
        email: c.text(cols.email, "email"),
        departments,
        position: c.text(cols.position, "position"),
        gender,
        leader,
        order,
        alias: c.text(cols.alias, "alias"),
        address: c.text(cols.address, "address"),
        telephone: c.text(cols.telephone, "telephone"),
        enabled,
        main_department,
    }
}

fn party_row(c: &mut Cells<'_>, cols: &PartyColumns) -> PartyRow {
    let name = c.required(cols.name, "name");
    let n = c.errors.len();
    let id_text = c.required(cols.id, "id");
    let id = if c.errors.len() == n {
        c.id(&id_text, "id").unwrap_or(0)
    } else {
        0
    };
    let parent = c.text(Some(cols.parentid), "parentid");
    let parentid = match (id, parent.as_deref()) {
        (1, None | Some("0")) => None,
        (1, Some(_)) => {
            c.errors
                .push("the root department 1 must have parentid 0 or empty".into());
            None
        }
        (_, None) => {
            c.errors.push("parentid is empty".into());
            None
        }
        (_, Some(p)) => c.id(p, "parentid"),
    };
    if id != 0 && parentid == Some(id) {
        c.errors.push(format!("department {id} is its own parent"));
    }
    let order = c.text(cols.order, "order").and_then(|s| c.num(&s, "order"));
    PartyRow {
        id,
        name,
        parentid,
        order,
    }
}

/// At most `max` chars, so errors and stored names stay bounded.
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests;
