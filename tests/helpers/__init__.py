"""The tests' toolkit, one module per job; every test and conftest imports from here.

cli        run a stage as a user does (`run_cli`, `start_cli`, `run_stage`), REPO, `ok`, `one_line`
shared     ../shared beside the repository; skip, or fail under REQUIRE_TESTDATA=1, when it is missing
browser    a real headless Chromium: `require_chromium`, `dump_dom`, `browser` and its waits
files      strict JSONL reading, whole-tree snapshots, damaging a file in place, copying DATA
processes  waiting for a process's state, its descendants in /proc
raw        DATA/raw and raw/manifest.jsonl as the crawler leaves them
crops      DATA/crops and crops/manifest.jsonl as facecrop leaves them, and `run_dedup`
configs    the dataset.toml files a test writes: [facecrop], a folder crawl, the crawler made fast
real_data  a DATA built by the real crawler, facecrop and dedup over shared images
realsites  the real recorded getchu, Danbooru and Safebooru responses, for a local copy of each site
sites      local HTTP servers that behave like the crawled sites
hostile    a raw-socket server whose every route is a fault
review     the review app as a user starts it, and raw HTTP requests to it
train      the tiny trainer config and the one `python -m train` command line
"""
