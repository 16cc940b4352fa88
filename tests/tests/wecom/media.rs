//! An app sends an uploaded image that the member downloads on another node.

use super::*;

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f,
    0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47, 0xba, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A raw request on the api port: (status, body).
async fn request(
    a: &Api,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let client = Client::anonymous(&a.url, &a.ca)
        .expect("client")
        .with_timeout(Duration::from_secs(60));
    let (s, b) = client
        .session()
        .request(method, path, body, headers)
        .await
        .expect("request");
    (s.as_u16(), b.to_vec())
}

/// `media/upload` as wechatpy sends it (multipart, field `media`).
async fn media_upload(a: &Api, t: &str, kind: &str, name: &str, bytes: &[u8]) -> Value {
    let boundary = "----enclave-media-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (s, b) = request(
        a,
        Method::POST,
        &format!("/cgi-bin/media/upload?access_token={t}&type={kind}"),
        Some(body),
        &[("content-type", ct.as_str())],
    )
    .await;
    assert_eq!(s, 200);
    serde_json::from_slice(&b).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_sends_an_uploaded_image_that_the_member_downloads_on_another_node() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let app = create_app(&c, 0, "Notify", &["message:send", "directory:write"], &[]).await;
    let w1 = wecom(&mut c, 1);
    let t = w1.token(&app).await;
    let a1 = api(&mut c, 1);
    let a2 = api(&mut c, 2);
    let ann = a2.login("ann", PW).await;
    let mut stream = a2.stream(&ann, None).await;
    stream.until_synced().await;

    // Upload on node 1, as WeCom answers it.
    let v = media_upload(&a1, &t, "image", "chart.png", PNG).await;
    assert_eq!((errcode(&v), v["type"].as_str()), (0, Some("image")), "{v}");
    let media = v["media_id"].as_str().expect("media_id").to_string();
    assert!(
        v["created_at"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok()),
        "{v}"
    );
    // Not an image, too large: WeCom's codes, nothing recorded.
    let v = media_upload(&a1, &t, "image", "a.txt", b"hello").await;
    assert_eq!(errcode(&v), 40005, "{v}");
    let v = media_upload(&a1, &t, "voice", "a.amr", &vec![0u8; (2 << 20) + 1]).await;
    assert_eq!(errcode(&v), 40010, "{v}");
    let v = media_upload(&a1, &t, "voice", "a.mp3", b"ID3 not amr").await;
    assert_eq!(errcode(&v), 40005, "{v}");

    // Sent through node 0 as msgtype image; ann sees it live on node 2.
    let w0 = wecom(&mut c, 0);
    let v = w0
        .post(
            "message/send",
            &t,
            json!({"touser": "ann", "msgtype": "image", "agentid": app.agentid,
                   "image": {"media_id": media}}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let got = stream.messages(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "no live message on node 2");
    let m = &got[0]["message"];
    assert_eq!(m["text"], "[图片]", "{m}");
    assert_eq!(m["file"]["id"], json!(media), "{m}");
    assert_eq!(
        (m["file"]["kind"].as_str(), m["file"]["mime"].as_str()),
        (Some("image"), Some("image/png")),
        "{m}"
    );
    // ann downloads it from node 2; bob may not.
    let auth = format!("Bearer {ann}");
    let (s, b) = request(
        &a2,
        Method::GET,
        &format!("/v1/files/{media}"),
        None,
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_eq!((s, b.as_slice()), (200, PNG));
    let bob = a2.login("bob", PW).await;
    let auth = format!("Bearer {bob}");
    let (s, _) = request(
        &a2,
        Method::GET,
        &format!("/v1/files/{media}"),
        None,
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_ne!(s, 200);

    // media/get on node 2: the same bytes; unknown ids are 40007.
    let (s, b) = request(
        &a2,
        Method::GET,
        &format!("/cgi-bin/media/get?access_token={t}&media_id={media}"),
        None,
        &[],
    )
    .await;
    assert_eq!((s, b.as_slice()), (200, PNG));
    let v = w1
        .get(
            "media/get",
            &t,
            &[("media_id", "f0123456789abcdef0123456789abcdef")],
        )
        .await;
    assert_eq!(errcode(&v), 40007, "{v}");
    let v = w1.get("media/get", &t, &[]).await;
    assert_eq!(errcode(&v), 41006, "{v}");
    // Another app's media are not this app's.
    let other = create_app(&c, 0, "Other", &["message:send"], &[]).await;
    let ot = w1.token(&other).await;
    let v = w1.get("media/get", &ot, &[("media_id", &media)]).await;
    assert_eq!(errcode(&v), 40007, "{v}");
    let v = w1
        .post(
            "message/send",
            &ot,
            json!({"touser": "ann", "msgtype": "image", "agentid": other.agentid,
                   "image": {"media_id": media}}),
        )
        .await;
    assert_eq!(errcode(&v), 40007, "{v}");
    // An image is not sent as a voice note.
    let v = w1
        .post(
            "message/send",
            &t,
            json!({"touser": "ann", "msgtype": "voice", "agentid": app.agentid,
                   "voice": {"media_id": media}}),
        )
        .await;
    assert_eq!(errcode(&v), 40007, "{v}");

    // A file, to an app chat: "[文件] <name>".
    let doc = b"%PDF-1.4\n% quarterly report\n".to_vec();
    let v = media_upload(&a1, &t, "file", "季度报告.pdf", &doc).await;
    assert_eq!(errcode(&v), 0, "{v}");
    let fid = v["media_id"].as_str().expect("media_id").to_string();
    let v = w1
        .post(
            "message/send",
            &t,
            json!({"touser": "ann", "msgtype": "file", "agentid": app.agentid,
                   "file": {"media_id": fid}}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let got = stream.messages(1, Duration::from_secs(20)).await;
    let m = &got[0]["message"];
    assert_eq!(m["text"], "[文件] 季度报告.pdf", "{m}");
    assert_eq!(m["file"]["id"], json!(fid), "{m}");

    // A bulk job from a CSV uploaded with media/upload.
    let csv = "姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门负责人,排序\n新人,newbie,13800000001,n@example.com,1,,1,0,1\n";
    let v = media_upload(&a1, &t, "file", "users.csv", csv.as_bytes()).await;
    assert_eq!(errcode(&v), 0, "{v}");
    let v = w1
        .post("batch/syncuser", &t, json!({"media_id": v["media_id"]}))
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let jobid = v["jobid"].as_str().expect("jobid").to_string();
    let done = wait_for_async("the job to finish", Duration::from_secs(60), || {
        let w = w1.clone();
        let (t, j) = (t.clone(), jobid.clone());
        async move {
            let v = w.get("batch/getresult", &t, &[("jobid", &j)]).await;
            (v["status"] == 3).then_some(v)
        }
    })
    .await;
    assert_eq!(done["total"], 1, "{done}");
    let v = w0.get("user/get", &t, &[("userid", "newbie")]).await;
    assert_eq!((errcode(&v), v["name"].as_str()), (0, Some("新人")), "{v}");
}
