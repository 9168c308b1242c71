// proxy/assets: `edge assets`, which loads a directory tree into memcached under the keys a
// `static: memcached` route reads, so that a site's assets are there before its deploy.
//
//   edge assets --config FILE --route PREFIX [--host NAME] [--max-age AGE] DIR
//
// The route: the configuration's route whose path is exactly PREFIX, among every host entry; it
// must be `static: memcached`, and cache.memcached must be configured. When several entries have
// a static route with that path, --host chooses one: the entry the proxy routes that Host to.
// {host} in the key template is --host (lower case, no port) when given, else the entry's first
// match name when it is an exact name; a template using {host} without such a name is an error.
//
// The files: every regular file under DIR, in sorted order of their relative paths. Entries whose
// name starts with '.' (files and directories) are ignored; symbolic links and other special
// files are skipped and reported. A file's URL path is PREFIX (and '/' unless PREFIX ends with
// one) followed by its relative path, each segment percent-encoded except for the unreserved
// characters and "!$&'()*+,;=:@"; its key is cache::expand_static_key(template, host, path), as
// the proxy computes it for a request of that path. A file whose key is not a valid memcached
// key, or whose path a longer route of the same entry serves, is skipped and reported.
//
// The values: a cache::encode record of a 200 with Content-Type (by the file's extension),
// Cache-Control: max-age=N (--max-age: 30s, 10m, 1h, 7d or bare seconds; else the route's ttl
// when at least a second; else a day), a strong ETag (the first 16 hex digits of the content's
// SHA-256) and Last-Modified (the file's mtime), stored as received now, with the route's grace.
// The items never expire in memcached: the record's own freshness decides when the proxy
// revalidates them. A memcached without the invalidation log (proxy/tier.h) gets one first,
// dated before the records, so that baking before any edge has started is a normal deploy: an
// existing log is kept. A file whose item would exceed cache.memcached.max_item is counted too large
// and kept out (it is not read at all when the file alone exceeds it). At most 64 sets are in
// flight; a failing server is never taken out of the ring, so no key lands on a server the
// proxy would not ask for it.
//
// Output: progress on stderr (one line rewritten in place on a terminal, else a line every 10%
// of the files or every 1000 files), a line on stderr for every file failed, skipped or too
// large, and at the end the summary on stdout:
//   edge assets: N files stored (X bytes) under PREFIX for host HOST in memcached SERVERS;
//   M too large, K failed, S skipped
// (one line; HOST is "(any)" when no host name is used).
//
// Exit code: 0 when every file was stored or counted too large or skipped, 1 when any file
// failed (unreadable, or its set failed: memcached down, timed out), 2 for a usage or
// configuration error (configuration errors as `file:line:col: message`).
#pragma once

namespace edge::proxy {

// The whole command; argv[1] is "assets". Returns the exit code.
int run_assets(int argc, char** argv);

}  // namespace edge::proxy
