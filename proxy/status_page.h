// proxy/status_page: the admin port's pages for people, one self-contained HTML document each
// (inline CSS and script, nothing fetched from elsewhere), served at GET /. Defined in
// status_page.cc.
//
//   - the sign-in page: a form that posts the admin token to /login (proxy/admin_session.h);
//     no script.
//   - the status page, for a signed-in session: it fetches /backends, /stats, /top and /events
//     every two seconds and redraws itself from them without reloading: backends and servers
//     (state, in flight, queued, served, failed, response-time percentiles, last check) with
//     Drain and Enable buttons, the edge queue, the workers, the cache (hit ratio per host,
//     evictions, coalesced waits, the memcached tier), recent purges, bans and reloads, the top
//     URLs, and a purge form. Figures a given edge does not report show as a dash. Every value
//     from the JSON goes into the page as text, never as markup (hosts and URLs come from
//     clients). Its POSTs carry the session's CSRF token, which the page holds in a meta
//     element. A 401 sends the browser back to the sign-in page.
//
// Both are served with page_headers(): no caching, a Content-Security-Policy that runs only
// the page's own script and style (by a nonce fresh for each response), connects only to the
// port itself and lets no other page frame it.
#pragma once

#include <string>
#include <string_view>

namespace edge::proxy::admin {

// `message`: said above the form ("" for none); `nonce`: the one in page_headers().
std::string render_sign_in_page(std::string_view message, std::string_view nonce);
// `csrf`: the session's CSRF token (proxy/admin_session.h).
std::string render_status_page(std::string_view csrf, std::string_view nonce);
// The response's header lines (CRLF included) for a page whose script and style carry `nonce`.
std::string page_headers(std::string_view nonce);

// Text made safe inside HTML text or a quoted attribute value.
std::string html_escape(std::string_view text);

}  // namespace edge::proxy::admin
