"""Site accounts: from the environment or a credentials file, sent to the site, and never written anywhere.

Each test makes a fresh random key, crawls a local site that checks it is sent (Danbooru as HTTP
Basic auth, Gelbooru as `api_key`/`user_id` query parameters), and then greps every file under
DATA (the manifest, crawl.sqlite with its WAL, the raw store), stdout and stderr for the key. Error
paths run too: a page whose redirect echoes the key back, a retried 5xx, `-v` debug logging.
Danbooru posts are the conftest's (shaped like the real API); Gelbooru's are the real recording.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from crawler import config as crawler_config
from pipeline.config import read_config
from pipeline.layout import Layout
from tests.helpers.boorus import JSON, gelbooru_body, gelbooru_exhausted, manifest, serve_files
from tests.helpers.cli import cli_env

DAPI_TAGS = "1girl solo"


def new_key() -> str:
    return secrets.token_hex(20)


def leaks(needles: list[str], data: Path, *texts: str) -> list[str]:
    """Where any needle appears: files under `data` (read as bytes) and the given texts."""
    found = []
    for path in sorted(data.rglob("*")):
        if path.is_file():
            blob = path.read_bytes()
            found += [f"{path}: {n[:6]}..." for n in needles if n.encode() in blob]
    for index, text in enumerate(texts):
        found += [f"text #{index}: {n[:6]}..." for n in needles if n in text]
    return found


def serve_danbooru_with_login(server, make_danbooru_post, images: list[bytes], token: str) -> list[str]:
    """/posts.json answers only the account: without its Authorization header, a 422 (HAND-WRITTEN body in
    the shape of Danbooru's error answers) as for a search over the anonymous tag limit. The first answer
    is a 500 (retried). Returns the image paths."""
    posts = [make_danbooru_post(server, 900 - n, image) for n, image in enumerate(images)]
    page = json.dumps(posts).encode()
    refused = json.dumps({"success": False, "message": "You cannot search for more than 2 tags at a time."})
    served = []

    def listing(hit) -> server.Reply:
        if hit.headers.get("Authorization") != f"Basic {token}":
            return server.Reply(422, refused.encode(), JSON)
        served.append(hit.path)
        if len(served) == 1:
            return server.Reply(500, b"busy", {"Content-Type": "text/plain"})
        return server.Reply(200, page if "page=b" not in hit.path else b"[]", JSON)

    server.route("/posts.json", listing)
    return [urlsplit(post["file_url"]).path for post in posts]


def test_danbooru_account_from_the_environment_lifts_the_tag_limit_and_is_never_written(
    site_server, make_danbooru_post, face_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    login, key = "someone_" + secrets.token_hex(3), new_key()
    token = base64.b64encode(f"{login}:{key}".encode()).decode()
    images = serve_danbooru_with_login(server, make_danbooru_post, face_images[:3], token)
    config = write_config([{"kind": "danbooru", "base_url": server.base, "tags": "1girl solo smile"}])
    data = tmp_path / "data"
    env = cli_env(DANBOORU_LOGIN=login, DANBOORU_API_KEY=key)
    result = run_crawler(config, data, "-v", env=env)
    assert result.returncode == 0, result.stderr
    assert len(manifest(data)) == 3 and "1girl+solo+smile" in server.hits()[1].path  # 3 tags went out
    listing = [h for h in server.hits() if h.path.startswith("/posts.json")]
    assert len(listing) == 3 and all(h.headers["Authorization"] == f"Basic {token}" for h in listing)
    image_hits = [h for h in server.hits() if h.path in images]
    assert len(image_hits) == 3 and not any("Authorization" in h.headers for h in image_hits)
    assert leaks([key, token], data, result.stdout, result.stderr) == []

    # Without the account the same source is a config error, and says how to add one.
    anonymous = run_crawler(config, tmp_path / "anon", env=cli_env())
    assert anonymous.returncode == 2 and "DANBOORU_API_KEY" in anonymous.stderr


def serve_gelbooru_with_key(server, realsites: Path, images: list[bytes], key: str, user: str) -> dict:
    """The recorded answer for requests carrying the account (401 otherwise, as gelbooru.com has answered
    anonymous API requests since 2025); the page below it first redirects to another port with the key
    in the Location, so the failure the crawler reports quotes the key unless it masks it."""
    body = gelbooru_body(realsites, server)
    serve_files(server, body["post"], images, "file_url")
    seen: list[dict] = []

    def dapi(hit) -> server.Reply:
        query = parse_qs(urlsplit(hit.path).query)
        seen.append(query)
        if query.get("api_key") != [key] or query.get("user_id") != [user]:
            return server.Reply(401, b'"Authentication required"', JSON)
        if "id:<" not in query["tags"][0]:
            return server.Reply(200, json.dumps(body).encode(), JSON)
        if len([q for q in seen if "id:<" in q["tags"][0]]) == 1:
            return server.Reply(302, b"", {"Location": f"http://127.0.0.1:9/?api_key={key}"})
        return server.Reply(200, gelbooru_exhausted(body), JSON)

    server.route("/index.php", dapi)
    return {"seen": seen, "posts": body["post"]}


def test_gelbooru_key_goes_in_the_query_and_is_never_written(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    key, user = new_key(), str(secrets.randbelow(10**6) + 10**6)
    site = serve_gelbooru_with_key(server, realsites, face_images[:10], key, user)
    config = write_config([{"kind": "gelbooru", "base_url": server.base}])
    data = tmp_path / "data"
    env = cli_env(GELBOORU_API_KEY=key, GELBOORU_USER_ID=user)
    result = run_crawler(config, data, "-v", env=env)
    assert result.returncode == 0, result.stderr
    assert len(manifest(data)) == 6  # the general and sensitive posts of the recording
    assert all(q["api_key"] == [key] and q["user_id"] == [user] for q in site["seen"])
    images = [h for h in server.hits() if h.path.startswith("/images/")]
    assert len(images) == 6 and not any("api_key" in h.path for h in images)  # never sent to files
    # The redirect that echoed the key was reported, masked.
    assert "offhost_redirect" in result.stderr and "api_key=***" in result.stderr
    assert leaks([key], data, result.stdout, result.stderr) == []
    with sqlite3.connect(Layout(data).crawl_state) as db:  # the cached pages are keyed by the URL without it
        urls = [url for (url,) in db.execute("SELECT url FROM pages")]
    assert urls and not any("api_key" in url for url in urls)

    # The next run asks for the page that failed (with the key) and for nothing else, leaking nothing.
    again = run_crawler(config, data, env=env)
    assert again.returncode == 0, again.stderr
    assert leaks([key], data, again.stdout, again.stderr) == []


def test_credentials_file_outside_the_config(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    key, user = new_key(), "4242"
    site = serve_gelbooru_with_key(server, realsites, face_images[:10], key, user)
    creds = tmp_path / "home" / "credentials.toml"
    creds.parent.mkdir()
    creds.write_text(f'[gelbooru]\napi_key = "{key}"\nuser_id = {user}\n')
    creds.chmod(stat.S_IRUSR | stat.S_IWUSR)
    config = write_config([{"kind": "gelbooru", "base_url": server.base}], {"credentials_file": str(creds)})
    data = tmp_path / "data"
    result = run_crawler(config, data, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert site["seen"] and site["seen"][0]["api_key"] == [key]
    assert "can be read by other users" not in result.stderr
    assert leaks([key], data, result.stdout, result.stderr) == []

    creds.chmod(0o644)
    again = run_crawler(config, data, env=cli_env())
    assert again.returncode == 0 and "can be read by other users" in again.stderr
    assert key not in again.stderr


def test_keys_are_refused_where_they_would_be_shared_and_errors_never_quote_them(
    write_config, run_crawler, tmp_path
):
    key = new_key()
    # In dataset.toml itself: refused, naming where the key belongs.
    config = write_config([{"kind": "gelbooru", "base_url": "http://127.0.0.1:9", "api_key": key}])
    result = run_crawler(config, tmp_path / "data", env=cli_env())
    assert result.returncode == 2 and key not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "GELBOORU_API_KEY" in result.stderr

    creds = tmp_path / "credentials.toml"
    bad = {
        "a misspelt name": (f'[gelbooru]\napikey = "{key}"\n', "apikey"),
        "a site without accounts": (f'[zerochan]\napi_key = "{key}"\n', "[zerochan]"),
        "not TOML": (f'[gelbooru]\napi_key = "{key}\n', "cannot be read as TOML"),
    }
    for text, named in bad.values():
        creds.write_text(text)
        creds.chmod(0o600)
        config = write_config(
            [{"kind": "gelbooru", "base_url": "http://127.0.0.1:9"}], {"credentials_file": str(creds)}
        )
        result = run_crawler(config, tmp_path / "data", env=cli_env())
        assert result.returncode == 2 and named in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and key not in result.stderr + result.stdout

    # Half an account is an error that says which half is missing.
    config = write_config([{"kind": "danbooru", "base_url": "http://127.0.0.1:9"}])
    result = run_crawler(config, tmp_path / "data", env=cli_env(DANBOORU_LOGIN="someone"))
    assert result.returncode == 2 and "DANBOORU_API_KEY is not set" in result.stderr


def test_settings_never_show_a_key(write_config, monkeypatch, tmp_path):
    key = new_key()
    monkeypatch.setenv("DANBOORU_LOGIN", "someone")
    monkeypatch.setenv("DANBOORU_API_KEY", key)
    path = write_config([{"kind": "danbooru", "base_url": "http://127.0.0.1:9", "tags": "a b c"}])
    settings = crawler_config.load(read_config(path))
    assert settings.credentials["danbooru"]["api_key"] == key
    assert key not in repr(settings) and key not in str(settings.credentials)
