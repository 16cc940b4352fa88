use super::*;
use proptest::prelude::*;

const TEMPLATE: &str = "姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门负责人,排序,别名,地址,座机,禁用(0-启用;1-禁用)\n";

fn all_users(bytes: &[u8]) -> Vec<ParsedRow<UserRow>> {
    let cols = user_header(bytes).expect("header");
    let chunk = user_rows(bytes, &cols, cols.data_start, usize::MAX).expect("ok");
    assert!(chunk.done);
    chunk.rows
}

fn ok(row: &ParsedRow<UserRow>) -> &UserRow {
    row.result.as_ref().expect("ok")
}

fn err(row: &ParsedRow<UserRow>) -> (u64, &str, &str) {
    let e = row.result.as_ref().expect_err("an error");
    assert_eq!(e.line, row.line);
    (e.line, e.key.as_str(), e.message.as_str())
}

#[test]
fn chinese_template() {
    let file = format!(
        "{TEMPLATE}张三,zhangsan,13800000000,zs@example.com,1;2,经理,男,1;0,10;20,jack,广州,020-123,0\n李四,lisi,,,,,,,,,,,\n"
    );
    let rows = all_users(file.as_bytes());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].line, 2);
    let want = UserRow {
        userid: "zhangsan".into(),
        name: "张三".into(),
        mobile: Some("13800000000".into()),
        email: Some("zs@example.com".into()),
        departments: Some(vec![1, 2]),
        position: Some("经理".into()),
        gender: Some(1),
        leader: Some(vec![true, false]),
        order: Some(vec![10, 20]),
        alias: Some("jack".into()),
        address: Some("广州".into()),
        telephone: Some("020-123".into()),
        enabled: Some(true),
        main_department: None,
    };
    assert_eq!(ok(&rows[0]), &want);
    let empty = ok(&rows[1]);
    assert_eq!(
        (empty.userid.as_str(), empty.name.as_str()),
        ("lisi", "李四")
    );
    assert_eq!(
        (empty.departments.clone(), empty.enabled, empty.gender),
        (None, None, None)
    );
}

#[test]
fn english_header_bom_other_order() {
    let file = "\u{feff} Name , UserID,Department,Notes,is_leader_in_dept,Order,Enable,Gender,main_department\r\n\
                Alice,alice,3;4,hi,是,5,1,female,4\r\n";
    let cols = user_header(file.as_bytes()).expect("header");
    assert_eq!((cols.name, cols.userid, cols.department), (0, 1, Some(2)));
    assert_eq!(cols.ignored, vec!["Notes".to_string()]);
    assert_eq!(cols.mobile, None);
    let rows = all_users(file.as_bytes());
    let a = ok(&rows[0]);
    assert_eq!(a.userid, "alice");
    assert_eq!(a.departments, Some(vec![3, 4]));
    assert_eq!(a.leader, Some(vec![true, true]));
    assert_eq!(a.order, Some(vec![5, 5]));
    assert_eq!(
        (a.enabled, a.gender, a.main_department),
        (Some(true), Some(2), Some(4))
    );
    assert_eq!(a.mobile, None);
}

#[test]
fn quoted_cells_and_line_numbers() {
    let file = format!(
        "{TEMPLATE}\"Wang, Wu\",wangwu,,,\"1,2；3\",,,,,,\"line one\nline two\",,1\n\n  \nzhao,zhao,,,x2,,,,,,,,\n"
    );
    let rows = all_users(file.as_bytes());
    assert_eq!(rows.len(), 2);
    let w = ok(&rows[0]);
    assert_eq!(w.name, "Wang, Wu");
    assert_eq!(w.departments, Some(vec![1, 2, 3]));
    assert_eq!(w.address.as_deref(), Some("line one\nline two"));
    assert_eq!(w.enabled, Some(false));
    // The quoted address spans lines 2-3, then two blank lines.
    assert_eq!(
        err(&rows[1]),
        (6, "zhao", "department \"x2\" is not a number")
    );
}

#[test]
fn row_errors_do_not_stop_the_file() {
    let long = "a".repeat(MAX_CELL + 1);
    let mut file = TEMPLATE.as_bytes().to_vec();
    file.extend_from_slice(b"a,a,,,1;2,,,1;0;1,,,,,\n");
    file.extend_from_slice(b"b,,,,1,,x,,,,,,\n");
    file.extend_from_slice(format!("c,c,,,,{long},,,,,,,\n").as_bytes());
    file.extend_from_slice(b"d,d,\xff\xfe,,,,,,,,,,\n");
    file.extend_from_slice(b"e,e,,,,,,1,,,,,2\n");
    file.extend_from_slice(b"f,f,,,7,,,,,,,,\n");
    // One cause, one message: no pile-up on the per-department lists.
    file.extend_from_slice(b"g,g,,,x2,,,1;0,1;2,,,,\n");
    file.extend_from_slice(b"h,h,,,1;2,,,x;1,,,,,\n");
    let rows = all_users(&file);
    assert_eq!(rows.len(), 8);
    assert_eq!(err(&rows[6]).2, "department \"x2\" is not a number");
    assert_eq!(err(&rows[7]).2, "is_leader_in_dept \"x\" is not 0 or 1");
    assert_eq!(
        err(&rows[0]),
        (2, "a", "is_leader_in_dept has 3 values for 2 departments")
    );
    assert_eq!(
        err(&rows[1]),
        (
            3,
            "",
            "userid is empty; gender \"x\" is not 1/男/male or 2/女/female"
        )
    );
    assert_eq!(
        err(&rows[2]),
        (4, "c", "position is 1025 bytes long (at most 1024)")
    );
    assert_eq!(err(&rows[3]), (5, "d", "mobile is not valid UTF-8"));
    assert_eq!(
        err(&rows[4]),
        (
            6,
            "e",
            "is_leader_in_dept is set but department is empty; disable \"2\" is not 0 or 1"
        )
    );
    assert_eq!(ok(&rows[5]).departments, Some(vec![7]));
    assert_eq!(rows[5].line, 7);
}

#[test]
fn header_errors() {
    let e = user_header("姓名,手机号,,Notes\n".as_bytes()).expect_err("an error");
    assert_eq!(
        e.to_string(),
        "the header has no userid (帐号) column; columns found: 姓名, 手机号, Notes"
    );
    let e = user_header(b"userid,name,\xd0\xd5\xc3\xfb\n").expect_err("an error");
    assert_eq!(e, CsvError::NotUtf8 { column: 3 });
    assert!(e.to_string().contains("CSV UTF-8"));
    assert_eq!(
        user_header(b"\n\r\n").expect_err("an error"),
        CsvError::Empty
    );
    let e = user_header("帐号,userid,name\n".as_bytes()).expect_err("an error");
    assert_eq!(
        e.to_string(),
        "columns \"帐号\" and \"userid\" both mean userid"
    );
    let e = user_header(b"userid,name,enable,disable\n").expect_err("an error");
    assert!(matches!(e, CsvError::DuplicateColumn { .. }));
}

#[test]
fn party_file() {
    let file = "\u{feff}部门名称,部门ID,父部门ID,排序\n总公司,1,0,1\n研发部,2,1,\n\n根2,1,,\n坏,3,,\n自己,4,4,x\n";
    let cols = party_header(file.as_bytes()).expect("header");
    assert_eq!(count_rows(file.as_bytes(), &cols), 5);
    let chunk = party_rows(file.as_bytes(), &cols, cols.data_start, 100).expect("ok");
    let r: Vec<_> = chunk.rows.iter().map(|r| r.result.clone()).collect();
    let row = |id, name: &str, parentid, order| PartyRow {
        id,
        name: name.into(),
        parentid,
        order,
    };
    assert_eq!(r[0], Ok(row(1, "总公司", None, Some(1))));
    assert_eq!(r[1], Ok(row(2, "研发部", Some(1), None)));
    assert_eq!(r[2], Ok(row(1, "根2", None, None)));
    let e = r[3].clone().expect_err("an error");
    assert_eq!(
        (e.line, e.key.as_str(), e.message.as_str()),
        (6, "3", "parentid is empty")
    );
    let e = r[4].clone().expect_err("an error");
    assert_eq!(
        e.message,
        "department 4 is its own parent; order \"x\" is not a number"
    );
    let e = party_header(b"name,id\n").expect_err("an error");
    assert_eq!(
        e.to_string(),
        "the header has no parentid (父部门id) column; columns found: name, id"
    );
}

/// Reads the whole file in chunks of `n`, checking the bookkeeping.
fn in_chunks(bytes: &[u8], n: usize) -> Vec<ParsedRow<UserRow>> {
    let cols = user_header(bytes).expect("header");
    let mut at = cols.data_start;
    let mut rows = Vec::new();
    loop {
        let c = user_rows(bytes, &cols, at, n).expect("ok");
        assert!(c.rows.len() <= n);
        assert_eq!(c.next.line, 1 + newlines(&bytes[..c.next.offset as usize]));
        assert_eq!(
            user_rows(bytes, &cols, at, n).expect("ok"),
            c,
            "deterministic"
        );
        rows.extend(c.rows);
        at = c.next;
        if c.done {
            return rows;
        }
        assert_eq!(rows.len() % n, 0, "a short chunk must be the last");
    }
}

#[test]
fn chunks_match_one_pass() {
    let file = format!(
        "{TEMPLATE}a,a,,,1\n\nb,b,,,\"1\n2\"\r\nc,,,\n,,,,\nd,d,,,x\ne,e\nf,f,,,,,,,,,\"x\n\ny\"\ng,g"
    );
    let one = all_users(file.as_bytes());
    assert_eq!(one.len(), 7);
    assert_eq!(
        one.iter().map(|r| r.line).collect::<Vec<_>>(),
        [2, 4, 6, 8, 9, 10, 13]
    );
    let cols = user_header(file.as_bytes()).expect("header");
    assert_eq!(count_rows(file.as_bytes(), &cols), 7);
    // Chunks and columns go into replicated commands as postcard.
    let c = user_rows(file.as_bytes(), &cols, cols.data_start, 3).expect("ok");
    let enc = postcard::to_stdvec(&(&cols, &c)).expect("encode");
    let dec: (UserColumns, Chunk<UserRow>) = postcard::from_bytes(&enc).expect("decode");
    assert_eq!(dec, (cols.clone(), c));
    for n in [1, 2, 7, 100] {
        assert_eq!(in_chunks(file.as_bytes(), n), one, "chunks of {n}");
    }
    let bad = Cursor {
        offset: cols.data_start.offset + 1,
        line: 2,
    };
    assert!(matches!(
        user_rows(file.as_bytes(), &cols, bad, 1),
        Err(CsvError::BadCursor { .. })
    ));
}

proptest! {
    #[test]
    fn resume_anywhere(
        rows in prop::collection::vec((
            prop::sample::select(vec!["u1", "", "张三", "x y"]),
            prop::sample::select(vec!["n", "\"a,b\"", "\"multi\nline\"", "\"q\"\"q\""]),
            prop::sample::select(vec!["", "1", "1;2", "\"3,4\"", "x", "\"5\r\n\""]),
            0..3usize,
            any::<bool>(),
        ), 0..30),
        n in 1..10usize,
    ) {
        let eol = |crlf: bool| if crlf { "\r\n" } else { "\n" };
        let mut file = String::from("userid,name,department\n");
        let mut line = 2;
        let mut want_lines = Vec::new();
        for (uid, name, dept, blanks, crlf) in rows {
            for _ in 0..blanks {
                file.push_str(eol(crlf));
                line += 1;
            }
            want_lines.push(line);
            file.push_str(&format!("{uid},{name},{dept}{}", eol(crlf)));
            line += newlines(format!("{name}{dept}").as_bytes()) + 1;
        }
        let one = all_users(file.as_bytes());
        prop_assert_eq!(one.iter().map(|r| r.line).collect::<Vec<_>>(), want_lines);
        let cols = user_header(file.as_bytes()).expect("header");
        prop_assert_eq!(count_rows(file.as_bytes(), &cols), one.len() as u64);
        prop_assert_eq!(in_chunks(file.as_bytes(), n), one);
    }
}
