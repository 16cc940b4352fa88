//! A bulk replace finishes across a leader kill, applying each row once.

use super::*;

/// A CSV in WeCom's user template, `n` rows, plus one bad row.
fn users_csv(n: usize) -> Vec<u8> {
    let mut s = String::from("姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门负责人,排序\n");
    for i in 0..n {
        s.push_str(&format!(
            "员工{i},e{i:06},1380000{i:04},e{i}@example.com,1,,1,0,{i}\n"
        ));
    }
    s.push_str("坏行,bad row!,,,x9,,,,\n");
    s.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replace_finishes_across_a_leader_kill_applying_each_row_once() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &["old1", "old2"], PW).await;
    let app = create_app(&c, 0, "HR-sync", &["directory:write"], &[]).await;
    let w = wecom(&mut c, 1);
    let t = w.token(&app).await;
    let rows = 12_000;
    let media = w.upload(&t, "users.csv", &users_csv(rows)).await;
    let v = w
        .post(
            "batch/replaceuser",
            &t,
            json!({"media_id": media, "to_invite": false,
              "callback": {"url": "", "token": "", "encodingaeskey": ""}}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let jobid = v["jobid"].as_str().expect("jobid").to_string();
    // Let it start, then kill the leader mid-job.
    wait_for_async("the job to start", Duration::from_secs(60), || {
        let w = w.clone();
        let (t, j) = (t.clone(), jobid.clone());
        async move {
            let v = w.get("batch/getresult", &t, &[("jobid", &j)]).await;
            (v["status"] != 1).then_some(())
        }
    })
    .await;
    let leader = c.leader().await;
    c.kill(leader);
    let live = c.live()[0];
    let w = wecom(&mut c, live);
    let t = w.token(&app).await;
    let done = wait_for_async("the job to finish", Duration::from_secs(240), || {
        let w = w.clone();
        let (t, j) = (t.clone(), jobid.clone());
        async move {
            let v = w.get("batch/getresult", &t, &[("jobid", &j)]).await;
            (v["status"] == 3).then_some(v)
        }
    })
    .await;
    assert_eq!(
        (done["type"].as_str(), done["total"].as_u64()),
        (Some("replace_user"), Some(rows as u64 + 1))
    );
    assert_eq!(done["percentage"], 100);
    let results = done["result"].as_array().expect("result");
    // Every row reported exactly once, in file order; the bad row fails.
    let row_results: Vec<&Value> = results
        .iter()
        .filter(|r| r["errmsg"] != "disabled: not in the file")
        .collect();
    assert_eq!(row_results.len(), rows + 1);
    let ids: Vec<&str> = row_results
        .iter()
        .filter_map(|r| r["userid"].as_str())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "a row was applied twice");
    let failed: Vec<&&Value> = row_results.iter().filter(|r| r["errcode"] != 0).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_ne!(failed[0]["errmsg"], "");
    // Members absent from the file are disabled, not deleted.
    for u in ["old1", "old2"] {
        let v = w.get("user/get", &t, &[("userid", u)]).await;
        assert_eq!((errcode(&v), &v["status"]), (0, &json!(2)), "{u}: {v}");
    }
    let v = w.get("user/get", &t, &[("userid", "e011999")]).await;
    assert_eq!(
        (errcode(&v), &v["status"], &v["order"]),
        (0, &json!(1), &json!([11999])),
        "{v}"
    );
    let v = w
        .get("user/simplelist", &t, &[("department_id", "1")])
        .await;
    assert_eq!(v["userlist"].as_array().map(Vec::len), Some(rows + 2));
}
