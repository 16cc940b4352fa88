//! A departed employee's contacts and customer groups handed to a colleague, who reads the old history on another node.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departure_hands_contacts_and_groups_to_a_colleague() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let ops = Ops::new(&c);
    let (a, sam) = org(&mut c, "销售部", &["sam", "nia"], "sam").await;

    // sam serves three contacts, chats with each.
    let mut x = BTreeMap::new();
    let mut ctok = BTreeMap::new();
    let mut sam_sent = 0u64;
    for k in ["c1", "c2", "c3"] {
        let conv = new_contact(&c, &a[0], &sam, &a[1], k).await;
        let t = login(&a[1], k).await;
        send(
            &a[0],
            &sam,
            &conv,
            &format!("您好 {k}，我是 sam，您的客户经理"),
        )
        .await;
        sam_sent += 1;
        send(&a[1], &t, &conv, &format!("收到，谢谢 sam（{k}）")).await;
        x.insert(k, conv);
        ctok.insert(k, t);
    }
    // And owns two customer groups.
    let mut groups = Vec::new();
    for (name, members) in [
        ("华东客户群", json!(["c1", "c2", "boss"])),
        ("供应链协调群", json!(["c3"])),
    ] {
        let (s, g) = a[0]
            .call(
                Method::POST,
                "/v1/external/groups",
                Some(&sam),
                Some(json!({"name": name, "members": members})),
            )
            .await;
        assert_eq!(s, 200, "{g}");
        assert_eq!(
            (g["kind"].as_str(), g["external"].as_bool()),
            (Some("customer"), Some(true)),
            "{g}"
        );
        groups.push(g["id"].as_str().expect("id").to_string());
    }
    let (g1, g2) = (groups[0].clone(), groups[1].clone());
    send(&a[0], &sam, &g1, "欢迎加入华东客户群").await;
    send(&a[0], &sam, &g2, "本群用于供应链协调").await;
    sam_sent += 2;
    c.wait_converged().await;
    send(&a[1], &ctok["c1"], &g1, "请问这批货的交期？").await;
    send(&a[1], &ctok["c3"], &g2, "下周一到货").await;
    c.wait_converged().await;
    let (s, v) = admin(
        &c,
        0,
        Method::GET,
        "/v1/external/supervision?department=2",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let row = |v: &Value, u: &str| {
        v["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["userid"] == u)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {u}: {v}"))
    };
    let r = row(&v, "sam");
    assert_eq!(
        (
            r["contacts"].as_u64(),
            r["customer_groups"].as_u64(),
            r["messages_to_externals"].as_u64()
        ),
        (Some(3), Some(2), Some(sam_sent)),
        "{r}"
    );

    eprintln!("---- walk-through: sam (销售部) leaves; nia takes over his external contacts ----");
    let sys = c.admin_dir.clone();
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::PUT,
        "/v1/directory/members/sam/status",
        Some(json!({"status": "departed"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = step(&c, &sys, 0, Method::GET, "/v1/external/unassigned", None).await;
    assert_eq!(s, 200, "{v}");
    let list = v["unassigned"].as_array().expect("unassigned");
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["employee"], "sam", "{v}");
    let names = |k: &str, f: &str| -> Vec<String> {
        let mut n: Vec<String> = list[0][k]
            .as_array()
            .expect("list")
            .iter()
            .map(|x| x[f].as_str().unwrap_or_default().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names("contacts", "userid"), vec!["c1", "c2", "c3"], "{v}");
    let mut want_groups = groups.clone();
    want_groups.sort();
    assert_eq!(names("groups", "id"), want_groups, "{v}");
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "sam", "to": "nia", "all": true, "message": "nia 将继续为您服务"})),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("done")), "{v}");
    let tid = v["id"].as_u64().expect("id");
    assert_eq!(v["externals"], json!(["c1", "c2", "c3"]), "{v}");
    let (s, v) = step(&c, &sys, 0, Method::GET, "/v1/external/unassigned", None).await;
    assert_eq!(
        (s, v["unassigned"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::GET,
        "/v1/external/contacts?employee=nia",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["contacts"]
            .as_array()
            .expect("contacts")
            .iter()
            .all(|x| x["previous"] == "sam"),
        "{v}"
    );
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::GET,
        &format!("/v1/external/transfers/{tid}"),
        None,
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("done")), "{v}");
    let (s, v) = step(
        &c,
        &ops.aud,
        0,
        Method::GET,
        "/v1/audit?action=external.transfer&limit=10",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    eprintln!("---- end of walk-through ----");

    let (contacts_nia, mut groups_nia) = served(&c, 0, "nia").await;
    groups_nia.sort();
    assert_eq!(contacts_nia, vec!["c1", "c2", "c3"]);
    assert_eq!(groups_nia, want_groups);
    let (contacts_sam, groups_sam) = served(&c, 0, "sam").await;
    assert!(
        contacts_sam.is_empty() && groups_sam.is_empty(),
        "{contacts_sam:?} {groups_sam:?}"
    );

    // The departed employee cannot log in.
    for api in &a[..2] {
        let (s, v) = api
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({"userid": "sam", "password": PW})),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (403, Some("account_inactive")),
            "sam logged in after departing: {v}"
        );
    }

    // The new owner, on another node, has every conversation and its history.
    c.wait_converged().await;
    let nia = login(&a[2], "nia").await;
    let list = conversations(&a[2], &nia).await;
    let ids: BTreeMap<String, Value> = list
        .iter()
        .map(|c| (c["id"].as_str().unwrap_or_default().to_string(), c.clone()))
        .collect();
    for (k, conv) in &x {
        let cv = ids
            .get(conv)
            .unwrap_or_else(|| panic!("nia lacks {k}'s 1:1 {conv}: {list:?}"));
        assert_eq!(
            (
                cv["kind"].as_str(),
                cv["external"].as_bool(),
                cv["owner"].as_str()
            ),
            (Some("contact"), Some(true), Some("nia")),
            "{cv}"
        );
        let history = messages(&a[2], &nia, conv).await.expect("history");
        let texts: Vec<(&str, &str)> = history
            .iter()
            .map(|m| {
                (
                    m["sender"].as_str().unwrap_or(""),
                    m["text"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert!(
            texts.contains(&("sam", &format!("您好 {k}，我是 sam，您的客户经理"))),
            "{texts:?}"
        );
        assert!(
            texts.contains(&(*k, &format!("收到，谢谢 sam（{k}）"))),
            "{texts:?}"
        );
        let notice: Vec<&(&str, &str)> = texts
            .iter()
            .filter(|(s, _)| *s == "system:handover")
            .collect();
        assert_eq!(notice.len(), 1, "{texts:?}");
        assert!(
            notice[0].1.contains("N-nia") && notice[0].1.contains("nia 将继续为您服务"),
            "{notice:?}"
        );
    }
    for g in &groups {
        let cv = ids
            .get(g)
            .unwrap_or_else(|| panic!("nia lacks group {g}: {list:?}"));
        assert_eq!(
            (cv["kind"].as_str(), cv["owner"].as_str()),
            (Some("customer"), Some("nia")),
            "{cv}"
        );
    }
    let h1 = messages(&a[2], &nia, &g1).await.expect("g1 history");
    let t1: Vec<&str> = h1.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(
        t1.contains(&"欢迎加入华东客户群") && t1.contains(&"请问这批货的交期？"),
        "{t1:?}"
    );
    assert!(
        h1.iter().any(|m| m["sender"] == "system:handover"),
        "{t1:?}"
    );
    let h2 = messages(&a[2], &nia, &g2).await.expect("g2 history");
    assert!(
        h2.iter()
            .any(|m| m["text"] == "下周一到货" && m["sender"] == "c3"),
        "{h2:?}"
    );
    // sam left the groups; the group members are nia and the rest.
    let (s, v) = a[2]
        .call(
            Method::GET,
            &format!("/v1/conversations/{g1}/members"),
            Some(&nia),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut mem: Vec<String> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["userid"].as_str().unwrap_or_default().to_string())
        .collect();
    mem.sort();
    assert_eq!(mem, vec!["boss", "c1", "c2", "nia"], "{v}");

    // nia chats with c1 from node 2; c1 reads and answers on node 1.
    let m = send(&a[2], &nia, &x["c1"], "我是 nia，之后由我跟进您的订单").await;
    wait_for_async("nia's message at c1 on node 1", WAIT, || async {
        let list = messages(&a[1], &ctok["c1"], &x["c1"]).await.ok()?;
        list.iter()
            .any(|v| v["seq"] == m["seq"] && v["sender"] == "nia")
            .then_some(())
    })
    .await;
    let r = send(&a[1], &ctok["c1"], &x["c1"], "好的，谢谢 nia").await;
    wait_for_async("c1's answer at nia on node 2", WAIT, || async {
        let list = messages(&a[2], &nia, &x["c1"]).await.ok()?;
        list.iter().any(|v| v["seq"] == r["seq"]).then_some(())
    })
    .await;
    send(&a[2], &nia, &g1, "大家好，我是新的群主 nia").await;
    // Each contact was told, and now sees nia (not sam) as who serves them.
    c.wait_converged().await;
    for (k, conv) in &x {
        let history = messages(&a[1], &ctok[k], conv)
            .await
            .expect("contact's history");
        let told = history
            .iter()
            .filter(|m| m["sender"] == "system:handover")
            .count();
        assert_eq!(told, 1, "{k}: {history:?}");
        assert_eq!(contacts(&a[1], &ctok[k]).await, vec!["nia"], "{k}");
    }
    let (s, v) = admin(
        &c,
        1,
        Method::GET,
        "/v1/external/supervision?department=2",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = row(&v, "nia");
    assert_eq!(
        (r["contacts"].as_u64(), r["customer_groups"].as_u64()),
        (Some(3), Some(2)),
        "{r}"
    );
    // A departed employee leaves the department, so its list no longer
    // has them.
    assert!(
        v["members"]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m["userid"] != "sam"),
        "{v}"
    );

    // Every step in the audit trail (read on node 1).
    let records = audit(&c, &ops, 1).await;
    let has = |action: &str, target: &str, outcome: &dyn Fn(&str) -> bool| {
        records
            .iter()
            .filter(|r| {
                r["action"] == action
                    && r["target"] == target
                    && outcome(r["outcome"].as_str().unwrap_or(""))
            })
            .count()
    };
    let ok = |o: &str| o == "ok";
    assert_eq!(has("external.invite", "sam", &ok), 3);
    for k in ["c1", "c2", "c3"] {
        assert_eq!(has("external.accept", k, &ok), 1, "{k}");
    }
    assert_eq!(has("external.group.create", "sam", &ok), 2);
    assert_eq!(has("directory.member.depart", "sam", &ok), 1);
    let transfer_target = format!(
        "sam->nia:contacts=c1|c2|c3;groups={}",
        want_groups.join("|")
    );
    assert_eq!(
        has("external.transfer", &transfer_target, &|o| o
            == format!("ok,transfer:{tid},done")),
        1,
        "{transfer_target}"
    );
    // Both refused logins of the departed account are recorded.
    assert_eq!(
        has("auth.login", "sam", &|o| o == "refused:account_inactive"),
        2,
        "sam's refused logins are not in the audit trail"
    );
    assert!(has("auth.login", "nia", &ok) >= 1);
    eprintln!("audit trail of the hand-over:");
    for r in records.iter().filter(|r| {
        let a = r["action"].as_str().unwrap_or("");
        a.starts_with("external.")
            || a == "directory.member.depart"
            || (a == "auth.login" && (r["target"] == "sam" || r["target"] == "nia"))
    }) {
        eprintln!(
            "  #{} {} {} → {} ({} {})",
            r["seq"],
            r["action"].as_str().unwrap_or(""),
            r["target"].as_str().unwrap_or(""),
            r["outcome"].as_str().unwrap_or(""),
            r["origin"]["kind"].as_str().unwrap_or(""),
            r["origin"]["role"]
                .as_str()
                .or(r["origin"]["actor"].as_str())
                .unwrap_or(""),
        );
    }
    same_state_everywhere(&c).await;
}

// ------------------------------------------------------------------ 3
