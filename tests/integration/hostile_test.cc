// Hostile input, as an attacker sends it: requests that try to smuggle a second request past
// edge or make it read a request differently from the backend, and responses that try the same
// from the other side. A recording backend asserts the exact bytes edge forwarded; every hostile
// request is followed on its connection by an innocent one, which must never reach the backend
// as a request of its own.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/integration/testkit.h"

using namespace edge::testkit;

using namespace std::string_literals;

namespace {

const std::string kInnocent = "GET /innocent HTTP/1.1\r\nHost: smuggle.test\r\n\r\n";

std::string config(uint16_t recorder) {
  return "workers: 1\n"
         "listen: [{address: 127.0.0.1:{{port}}}]\n"
         "limits: {max_header_bytes: 8k, max_request_line: 4k, max_body_bytes: 1k}\n"
         "backends:\n  rec: {servers: [" + yaml_address(recorder) + "]}\n"
         "hosts:\n"
         "  - {match: [smuggle.test], backend: rec, cache: off}\n"
         "  - {match: [victim.test], backend: rec}\n";
}

// What edge sends upstream for a body-less GET of `target` on `host` that passes.
std::string forwarded_get(const std::string& target, const std::string& host, const std::string& fields = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + fields +
         "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " + host +
         "\r\nVia: 1.1 edge\r\n\r\n";
}

struct Rejected {
  std::string name;
  std::string request;
  int status;
};

std::vector<Rejected> rejected_requests() {
  std::vector<Rejected> out;
  auto add = [&](std::string name, std::string request, int status = 400) {
    out.push_back({std::move(name), std::move(request), status});
  };
  const std::string get = "GET / HTTP/1.1\r\nHost: smuggle.test\r\n";
  const std::string post = "POST / HTTP/1.1\r\nHost: smuggle.test\r\n";

  // Bare CR: a line end for some readers only.
  add("CR after a line end", get + "\rX: y\r\n\r\n");
  add("CR after a line end hides a request", get + "\rGET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("CR inside a value makes a Content-Length appear", post + "X-A:\rZContent-Length: 5\r\n\r\nhello");
  add("CR inside a value", get + "X: a\rb\r\n\r\n");
  add("CR at the end of a value", get + "X: a\r\r\n\r\n");
  add("CR in a field name", get + "X\r-A: b\r\n\r\n");
  add("CR in the request line", "GET /\r HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("CR instead of the final CRLF", get + "\r\r\n");
  add("CR ends the trailer section", post + "Transfer-Encoding: chunked\r\n\r\n0\r\n\rGET /smuggled HTTP/1.1\r\n\r\n");
  add("CR after the chunk size", post + "Transfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n");
  add("CR in a chunk extension", post + "Transfer-Encoding: chunked\r\n\r\n5;a=\rb\r\nhello\r\n0\r\n\r\n");
  // Bare LF.
  add("LF ends a field", get + "X: y\n\r\n");
  add("LF ends the head", get + "\n");
  add("LF ends the request line", "GET / HTTP/1.1\nHost: smuggle.test\r\n\r\n");
  add("LF after the chunk size", post + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n");
  add("LF after chunk data", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n");
  add("LF inside a value", get + "X: a\nContent-Length: 5\r\n\r\n");
  // obs-fold.
  add("fold", get + "X: a\r\n b\r\n\r\n");
  add("fold with a tab", get + "X: a\r\n\tb\r\n\r\n");
  add("fold inside Host", "GET / HTTP/1.1\r\nHost: smuggle.test\r\n .evil\r\n\r\n");
  add("fold inside Host from empty", "GET / HTTP/1.1\r\nHost:\r\n smuggle.test\r\n\r\n");
  add("fold inside Transfer-Encoding", post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n");
  add("fold of Transfer-Encoding's value", post + "Transfer-Encoding: gzip,\r\n chunked\r\n\r\n0\r\n\r\n");
  add("fold inside Content-Length", post + "Content-Length:\r\n 5\r\n\r\nhello");
  add("fold inside Connection", get + "Connection: keep-alive,\r\n X-Hidden\r\n\r\n");
  add("white space before the first field", "GET / HTTP/1.1\r\n Host: smuggle.test\r\n\r\n");
  add("two folds", get + "X: a\r\n b\r\n c\r\n\r\n");
  // Transfer-Encoding other than one final chunked.
  add("TE gzip", post + "Transfer-Encoding: gzip\r\n\r\n");
  add("TE identity", post + "Transfer-Encoding: identity\r\n\r\n");
  add("TE chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n");
  add("TE gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501);
  add("TE identity, chunked", post + "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501);
  add("TE in two fields, gzip first", post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      501);
  add("TE chunked, chunked", post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n");
  add("TE chunked in two fields", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  add("TE empty", post + "Transfer-Encoding: \r\n\r\n");
  add("TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n");
  add("TE chunkedx", post + "Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n");
  add("TE chunked with a parameter", post + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n");
  add("TE with a vertical tab", post + "Transfer-Encoding: \x0b" "chunked\r\n\r\n0\r\n\r\n");
  add("TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  add("CL.TE", post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG");
  add("TE.CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n");
  add("TE.CL with TE in mixed case", post + "transfer-ENCODING: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n");
  // Content-Length.
  add("CL twice, different", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
  add("CL list, different", post + "Content-Length: 5, 6\r\n\r\nhello!");
  add("CL plus sign", post + "Content-Length: +5\r\n\r\nhello");
  add("CL negative", post + "Content-Length: -1\r\n\r\n");
  add("CL hex", post + "Content-Length: 0x5\r\n\r\nhello");
  add("CL with a space inside", post + "Content-Length: 5 5\r\n\r\nhello");
  add("CL with letters", post + "Content-Length: 5a\r\n\r\nhello");
  add("CL empty", post + "Content-Length: \r\n\r\n");
  add("CL exponent", post + "Content-Length: 1e3\r\n\r\n");
  add("CL overflow", post + "Content-Length: 99999999999999999999999\r\n\r\n");
  add("CL with a space before the colon", post + "Content-Length : 5\r\n\r\nhello");
  add("CL with a tab before the colon", post + "Content-Length\t: 5\r\n\r\nhello");
  add("CL over max_body_bytes", post + "Content-Length: 2000\r\n\r\n", 413);
  add("CL with a comma and nothing", post + "Content-Length: ,\r\n\r\n");
  // Chunked bodies.
  add("chunk size followed by junk", post + "Transfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n");
  add("chunk size with a space before the extension", post + "Transfer-Encoding: chunked\r\n\r\n5 ;a\r\nhello\r\n0\r\n\r\n");
  add("chunk size overflow", post + "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n");
  add("chunk size negative", post + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n");
  add("chunk size in 0x form", post + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n");
  add("chunk data not followed by CRLF", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n");
  add("chunk data longer than its size", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n");
  add("empty chunk size", post + "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n");
  add("chunked body over max_body_bytes", post + "Transfer-Encoding: chunked\r\n\r\n800\r\n" + std::string(2048, 'x') +
                                              "\r\n0\r\n\r\n", 413);
  add("chunk size with a plus", post + "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n");
  // Field names.
  add("space in a field name", get + "Bad Name: x\r\n\r\n");
  add("tab in a field name", get + "Bad\tName: x\r\n\r\n");
  add("empty field name", get + ": x\r\n\r\n");
  add("field name with @", get + "X@Y: x\r\n\r\n");
  add("field name with parentheses", get + "X(Y): x\r\n\r\n");
  add("field name with a slash", get + "X/Y: x\r\n\r\n");
  add("field name with a non-ASCII byte", get + "X\xc3\xa9: x\r\n\r\n");
  add("field name with NUL", get + "X\0Y: x\r\n\r\n"s);
  add("field without a colon", get + "NoColon\r\n\r\n");
  add("Host with a space before the colon", "GET / HTTP/1.1\r\nHost : smuggle.test\r\n\r\n");
  add("field name with a quote", get + "X\"Y: x\r\n\r\n");
  add("field name with brackets", get + "X[Y]: x\r\n\r\n");
  // Field values.
  add("NUL in a value", get + "X: a\0b\r\n\r\n"s);
  add("control byte in a value", get + "X: a\x01" "b\r\n\r\n");
  add("DEL in a value", get + "X: a\x7f" "b\r\n\r\n");
  // Request targets.
  add("asterisk for GET", "GET * HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("asterisk for POST", "POST * HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 0\r\n\r\n");
  add("asterisk for HEAD", "HEAD * HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("absolute-form https", "GET https://smuggle.test/ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("absolute-form ftp", "GET ftp://smuggle.test/ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("absolute-form file", "GET file:///etc/passwd HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("absolute-form with userinfo", "GET http://evil@smuggle.test/ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("absolute-form with user and password", "GET http://u:p@smuggle.test/ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("absolute-form with a bad authority", "GET http://smuggle.test:1:2/ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("absolute-form without slashes", "GET http:smuggle.test/ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("authority-form", "GET smuggle.test:80 HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("relative target", "GET a/b HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("fragment", "GET /a#b HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("backslash traversal", "GET /static\\..\\admin HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("bad percent escape", "GET /a%zz HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("lone percent", "GET /a% HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("bad percent escape in the query", "GET /a?b=%g0 HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("tab in the target", "GET /a\tb HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("non-ASCII in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("NUL in the target", "GET /a\0b HTTP/1.1\r\nHost: smuggle.test\r\n\r\n"s);
  add("request line too long", "GET /" + std::string(5000, 'a') + " HTTP/1.1\r\nHost: smuggle.test\r\n\r\n", 414);
  // Host.
  for (std::string host : {"evil@smuggle.test", "smuggle.test:1:2", "smuggle.test:@evil.example", "smuggle.test:",
                           "smuggle.test:65536", "smuggle.test:8o", "smuggle.test,evil.example", "smuggle.test;evil",
                           "smuggle.test/x", "smuggle.test?x", "smuggle.test#x", "smuggle%2etest", "smug gle.test",
                           "a..b", ".smuggle.test", "[::1", "[::1]x", "[nope]", "*", "smuggle.test\\evil",
                           "smuggle.test:80:80", "\xc3\xa9vil.test"})
    add("Host " + host, "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  add("Host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n");
  add("Host twice", "GET / HTTP/1.1\r\nHost: smuggle.test\r\nHost: victim.test\r\n\r\n");
  add("Host twice, same", "GET / HTTP/1.1\r\nHost: smuggle.test\r\nHost: smuggle.test\r\n\r\n");
  add("Host missing in HTTP/1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n");
  add("Host bad beside an absolute-form target", "GET http://smuggle.test/ HTTP/1.1\r\nHost: evil@x\r\n\r\n");
  // Connection nominating framing and routing fields.
  add("Connection: Host", get + "Connection: Host\r\n\r\n");
  add("Connection: host, in mixed case", get + "Connection: keep-alive, hOsT\r\n\r\n");
  add("Connection: Content-Length", post + "Content-Length: 5\r\nConnection: Content-Length\r\n\r\nhello");
  add("Connection: Transfer-Encoding",
      post + "Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n0\r\n\r\n");
  add("Connection: Host in a second field", get + "Connection: close\r\nConnection: Host\r\n\r\n");
  add("Connection: Content-Length without the field", get + "Connection: content-length\r\n\r\n");
  // Versions, methods, garbage.
  add("HTTP/2.0", "GET / HTTP/2.0\r\nHost: smuggle.test\r\n\r\n", 505);
  add("HTTP/0.9 style", "GET /\r\n\r\n", 505);
  add("junk after the version", "GET / HTTP/1.1 junk\r\nHost: smuggle.test\r\n\r\n", 505);
  add("lower-case method", "get / HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("unknown method", "FOO / HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("CONNECT", "CONNECT smuggle.test:443 HTTP/1.1\r\nHost: smuggle.test:443\r\n\r\n", 405);
  add("TLS hello on a plain port", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
  add("two spaces after the method", "GET  / HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("two spaces after the target", "GET /  HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("a tab after the method", "GET\t/ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("a space before the method", " GET / HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
  add("a space after the version", "GET / HTTP/1.1 \r\nHost: smuggle.test\r\n\r\n", 505);
  add("head larger than max_header_bytes", get + "X: " + std::string(9000, 'a') + "\r\n\r\n", 431);
  add("expectation other than 100-continue", post + "Expect: 200-ok\r\nContent-Length: 0\r\n\r\n", 417);
  return out;
}

struct Accepted {
  std::string name;
  std::string request;
  std::string forwarded;  // the exact bytes the backend must get for it
};

std::vector<Accepted> accepted_requests() {
  const std::string via = "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: smuggle.test\r\n"
                          "Via: 1.1 edge\r\n";
  std::vector<Accepted> out;
  out.push_back({"Host in capitals with a port", "GET /a HTTP/1.1\r\nHost: SMUGGLE.Test:8080\r\n\r\n",
                 forwarded_get("/a", "smuggle.test")});
  out.push_back({"Host with a trailing dot", "GET /a HTTP/1.1\r\nHost: smuggle.test.\r\n\r\n",
                 forwarded_get("/a", "smuggle.test")});
  out.push_back({"dot segments", "GET /static/../admin HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
                 forwarded_get("/admin", "smuggle.test")});
  out.push_back({"encoded dot segments", "GET /static/%2e%2e/admin HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
                 forwarded_get("/admin", "smuggle.test")});
  out.push_back({"single dots", "GET /./a/./b HTTP/1.1\r\nHost: smuggle.test\r\n\r\n", forwarded_get("/a/b", "smuggle.test")});
  out.push_back({"unreserved percent-encoding", "GET /%7euser/%41 HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
                 forwarded_get("/~user/A", "smuggle.test")});
  out.push_back({"absolute-form", "GET http://smuggle.test/p?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n",
                 forwarded_get("/p?q=1", "smuggle.test")});
  out.push_back({"absolute-form without a path", "GET http://smuggle.test HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
                 forwarded_get("/", "smuggle.test")});
  out.push_back({"X-Forwarded-Host from the client", "GET /a HTTP/1.1\r\nHost: smuggle.test\r\nX-Forwarded-Host: evil.example\r\n\r\n",
                 forwarded_get("/a", "smuggle.test")});
  out.push_back({"X-Original-URL and X-Rewrite-URL",
                 "GET /a HTTP/1.1\r\nHost: smuggle.test\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n\r\n",
                 forwarded_get("/a", "smuggle.test")});
  out.push_back({"method override", "GET /a HTTP/1.1\r\nHost: smuggle.test\r\nX-HTTP-Method-Override: DELETE\r\n\r\n",
                 forwarded_get("/a", "smuggle.test")});
  out.push_back({"Connection nominates a field", "GET /a HTTP/1.1\r\nHost: smuggle.test\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n",
                 forwarded_get("/a", "smuggle.test", "X-Kept: 2\r\n")});
  out.push_back({"hop-by-hop fields", "GET /a HTTP/1.1\r\nHost: smuggle.test\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n\r\n",
                 forwarded_get("/a", "smuggle.test")});
  out.push_back({"leading empty line", "\r\nGET /a HTTP/1.1\r\nHost: smuggle.test\r\n\r\n", forwarded_get("/a", "smuggle.test")});
  out.push_back({"TE chunked in capitals, with extensions and trailers",
                 "POST /up HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: Chunked\r\n\r\n"
                 "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nHost: evil.example\r\nX-Trailer: t\r\n\r\n",
                 "POST /up HTTP/1.1\r\nHost: smuggle.test\r\n" + via + "Content-Length: 5\r\n\r\nabcde"});
  out.push_back({"Content-Length list of one value", "POST /up HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 3\r\n\r\nabc",
                 "POST /up HTTP/1.1\r\nHost: smuggle.test\r\n" + via + "Content-Length: 3\r\n\r\nabc"});
  out.push_back({"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: smuggle.test\r\n\r\n", forwarded_get("*", "smuggle.test").replace(0, 3, "OPTIONS")});
  out.push_back({"query kept as received", "GET /a?b=%2e%2e&c=/../ HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
                 forwarded_get("/a?b=%2e%2e&c=/../", "smuggle.test")});
  out.push_back({"Host with a zero-padded port",
                 "GET /a HTTP/1.1\r\nHost: smuggle.test:00080\r\n\r\n", forwarded_get("/a", "smuggle.test")});
  out.push_back({"HTTP/1.0 with Host", "GET /a HTTP/1.0\r\nHost: smuggle.test\r\nConnection: keep-alive\r\n\r\n",
                 "GET /a HTTP/1.1\r\nHost: smuggle.test\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
                 "X-Forwarded-Host: smuggle.test\r\nVia: 1.0 edge\r\n\r\n"});
  return out;
}

}  // namespace

TEST_CASE("hostile requests are refused, and nothing after them reaches the backend") {
  RecordingBackend recorder;
  Edge edge(config(recorder.port()));
  const std::vector<Rejected> cases = rejected_requests();
  CHECK(cases.size() >= 150);
  for (const Rejected& c : cases) {
    CAPTURE(c.name);
    Client client(edge.port);
    client.send(c.request + kInnocent);
    Response r = client.read_response(c.request.starts_with("HEAD") ? "HEAD" : "GET");
    CHECK(r.status == c.status);
    CHECK(r.header("Connection") == std::string_view("close"));
    CHECK(client.wait_closed());
  }
  // A request sent after all of them is the only one the backend ever saw.
  Response last = get(edge.port, "smuggle.test", "/last");
  CHECK(last.status == 200);
  const std::vector<std::string> seen = recorder.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == forwarded_get("/last", "smuggle.test"));
}

TEST_CASE("accepted requests reach the backend canonical, byte for byte, and the next one too") {
  RecordingBackend recorder;
  Edge edge(config(recorder.port()));
  for (const Accepted& c : accepted_requests()) {
    CAPTURE(c.name);
    recorder.clear();
    Client client(edge.port);
    client.send(c.request + kInnocent);
    Response first = client.read_response();
    Response second = client.read_response();
    CHECK(first.status == 200);
    CHECK(second.status == 200);
    const std::vector<std::string> seen = recorder.requests();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == c.forwarded);
    CHECK(seen[1] == forwarded_get("/innocent", "smuggle.test"));
  }
}

TEST_CASE("hostile responses are 502, never stored, and the client's next request is answered cleanly") {
  RecordingBackend recorder;
  Edge edge(config(recorder.port()));
  const std::string cc = "Cache-Control: max-age=60\r\n";
  struct Case {
    std::string name;
    std::string response;
    bool in_head;  // refused before anything was relayed: exactly a 502
  };
  std::vector<Case> cases;
  auto add = [&](std::string name, std::string response, bool in_head = true) {
    cases.push_back({std::move(name), std::move(response), in_head});
  };
  const std::string ok = "HTTP/1.1 200 OK\r\n" + cc;
  add("CR after a line end", ok + "Content-Length: 2\r\n\rX: y\r\n\r\nok");
  add("CR inside a value", ok + "X-A:\rContent-Length: 2\r\n\r\nok");
  add("CR in the status line", "HTTP/1.1 200\rOK\r\n" + cc + "Content-Length: 2\r\n\r\nok");
  add("CR instead of the final CRLF", ok + "Content-Length: 2\r\n\r\r\nok");
  add("LF line ends", "HTTP/1.1 200 OK\nCache-Control: max-age=60\nContent-Length: 2\n\nok");
  add("LF ends one field", ok + "X: y\nContent-Length: 2\r\n\r\nok");
  add("LF ends the head", ok + "Content-Length: 2\r\n\nok");
  add("fold", ok + "X: a\r\n b\r\nContent-Length: 2\r\n\r\nok");
  add("fold with a tab", ok + "X: a\r\n\tb\r\nContent-Length: 2\r\n\r\nok");
  add("fold inside Content-Length", ok + "Content-Length:\r\n 2\r\n\r\nok");
  add("fold inside Transfer-Encoding", ok + "Transfer-Encoding:\r\n chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  add("fold in the final head after a 100", "HTTP/1.1 100 Continue\r\n\r\n" + ok + "X: a\r\n b\r\nContent-Length: 2\r\n\r\nok");
  for (std::string status : {"000", "099", "600", "999", "20", "2000", "abc"})
    add("status " + status, "HTTP/1.1 " + status + " OK\r\n" + cc + "Content-Length: 2\r\n\r\nok");
  add("TE gzip", ok + "Transfer-Encoding: gzip\r\n\r\nokok");
  add("TE identity", ok + "Transfer-Encoding: identity\r\n\r\nokok");
  add("TE gzip, chunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  add("TE chunked, gzip", ok + "Transfer-Encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  add("TE chunked twice", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  add("TE with Content-Length", ok + "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  add("TE in HTTP/1.0", "HTTP/1.0 200 OK\r\n" + cc + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  add("CL twice, different", ok + "Content-Length: 2\r\nContent-Length: 3\r\n\r\nok!");
  add("CL plus", ok + "Content-Length: +2\r\n\r\nok");
  add("CL negative", ok + "Content-Length: -2\r\n\r\nok");
  add("CL with a space inside", ok + "Content-Length: 2 2\r\n\r\nok");
  add("CL hex", ok + "Content-Length: 0x2\r\n\r\nok");
  add("CL with a space before the colon", ok + "Content-Length : 2\r\n\r\nok");
  add("Connection: Content-Length", ok + "Content-Length: 2\r\nConnection: Content-Length\r\n\r\nok");
  add("Connection: Transfer-Encoding", ok + "Transfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  add("space in a field name", ok + "Bad Name: x\r\nContent-Length: 2\r\n\r\nok");
  add("101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\n");
  add("garbage", "HELLO THERE\r\n\r\n");
  add("head too large", ok + "X: " + std::string(70000, 'a') + "\r\nContent-Length: 2\r\n\r\nok");
  add("chunk size followed by junk", ok + "Transfer-Encoding: chunked\r\n\r\n2 junk\r\nok\r\n0\r\n\r\n", false);
  add("chunk data not followed by CRLF", ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", false);
  add("chunk size overflow", ok + "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n", false);
  add("a response smuggled in the body", ok + "Content-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil");
  CHECK(cases.size() >= 40);

  int index = 0;
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string target = "/cached/r" + std::to_string(index++);
    recorder.answer_once(target, c.response);
    Client client(edge.port);
    client.send("GET " + target + " HTTP/1.1\r\nHost: victim.test\r\n\r\n" +
                "GET /innocent HTTP/1.1\r\nHost: smuggle.test\r\n\r\n");
    Response first = client.read_response();
    if (c.name == "a response smuggled in the body") {
      // Well framed: its two bytes are the answer, and what trails it is not a response.
      CHECK(first.status == 200);
      CHECK(first.body == "ok");
    } else if (c.in_head) {
      CHECK(first.status == 502);
    } else {
      CHECK((first.status == 502 || !first.complete));
    }
    if (first.complete) {
      Response second = client.read_response();
      CHECK(second.status == 200);
      CHECK(second.body == "/innocent host=smuggle.test xfh=smuggle.test");
    }
    // Nothing was stored: the next request for it goes to the backend and gets its answer.
    if (c.name != "a response smuggled in the body") {
      const size_t before = recorder.requests().size();
      Response again = get(edge.port, "victim.test", target);
      CHECK(again.status == 200);
      CHECK(again.body == target + " host=victim.test xfh=victim.test");
      CHECK(recorder.requests().size() == before + 1);
    }
  }
}
