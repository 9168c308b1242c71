#include "load/mix.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <unordered_set>
#include <utility>

namespace edge::load {

namespace {

// Each permutation gets a stream of its own, so books, authors and tags are not shuffled alike.
constexpr uint64_t kBookStream = 0xB00C5ull;
constexpr uint64_t kAuthorStream = 0xA0740Bull;
constexpr uint64_t kTagStream = 0x7A65ull;
constexpr uint64_t kWordStream = 0x3053ull;

uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  app::Rng rng{seed ^ (stream * 0x9E3779B97F4A7C15ull)};
  return rng.next();
}

std::string format(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

std::string ms(uint64_t ns) { return format("%.3f", static_cast<double>(ns) / 1e6); }

}  // namespace

Zipf::Zipf(uint32_t n, double alpha, uint64_t permutation_seed) : cdf_(n), ids_(n) {
  double sum = 0;
  for (uint32_t k = 1; k <= n; ++k) {
    sum += std::pow(static_cast<double>(k), -alpha);
    cdf_[k - 1] = sum;
  }
  for (double& c : cdf_) c /= sum;
  // Rounding may leave the last a hair under 1, and a draw just below 1 must still find a rank.
  cdf_.back() = 1.0;

  std::iota(ids_.begin(), ids_.end(), 1u);
  app::Rng rng{permutation_seed};
  for (uint32_t i = n - 1; i > 0; --i) std::swap(ids_[i], ids_[rng.below(i + 1)]);
}

uint32_t Zipf::rank(app::Rng& rng) const {
  const double u = rng.unit();
  const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
  const auto index = static_cast<uint32_t>(std::min<ptrdiff_t>(it - cdf_.begin(), cdf_.size() - 1));
  return index + 1;
}

double Zipf::share(uint32_t rank) const { return rank == 1 ? cdf_[0] : cdf_[rank - 1] - cdf_[rank - 2]; }

Mix::Mix(Catalogue catalogue, MixOptions options)
    : options_(options),
      picks_(std::move(catalogue.picks)),
      books_(catalogue.books, options.alpha, stream_seed(options.seed, kBookStream)),
      authors_(catalogue.authors, options.alpha, stream_seed(options.seed, kAuthorStream)),
      tags_(catalogue.tags, options.alpha, stream_seed(options.seed, kTagStream)),
      word_ranks_(static_cast<uint32_t>(std::max<size_t>(1, catalogue.words.size())), options.alpha,
                  stream_seed(options.seed, kWordStream)) {
  words_ = std::move(catalogue.words);
}

PlannedRequest Mix::next(app::Rng& rng, size_t sessions) const {
  PlannedRequest out;
  const auto any_session = [&]() -> std::optional<size_t> {
    if (sessions == 0) return std::nullopt;
    return static_cast<size_t>(rng.next() % sessions);
  };
  if (rng.unit() < options_.posts) {
    const uint32_t book = books_.sample(rng);
    out.kind = RequestKind::kPost;
    out.target = "/book/" + std::to_string(book) + "/reviews";
    out.body = "text=" + form_encode(review_sentence(rng)) + "&rating=" + std::to_string(1 + rng.below(5));
    out.session = any_session();
    return out;
  }

  double u = rng.unit();
  PagePick pick = kPageMix.back().pick;
  for (const PageShare& share : kPageMix) {
    if (u < share.share) {
      pick = share.pick;
      break;
    }
    u -= share.share;
  }
  switch (pick) {
    case PagePick::kHome:
      out.kind = RequestKind::kHome;
      out.target = "/";
      break;
    case PagePick::kHotBook:
    case PagePick::kBook: {
      const bool hot = pick == PagePick::kHotBook && !picks_.empty();
      const uint32_t book = hot ? picks_[rng.below(static_cast<uint32_t>(picks_.size()))] : books_.sample(rng);
      out.kind = RequestKind::kBook;
      out.target = "/book/" + std::to_string(book);
      break;
    }
    case PagePick::kAuthor:
      out.kind = RequestKind::kAuthor;
      out.target = "/author/" + std::to_string(authors_.sample(rng));
      break;
    case PagePick::kTag:
      out.kind = RequestKind::kTag;
      out.target = "/tag/" + std::to_string(tags_.sample(rng));
      break;
    case PagePick::kSearch: {
      const auto word = [&]() -> std::string_view {
        if (words_.empty()) return "the";
        return words_[word_ranks_.sample(rng) - 1];
      };
      std::string query(word());
      if (rng.below(2) == 1) query.append(" ").append(word());
      out.kind = RequestKind::kSearch;
      out.target = "/search?q=" + form_encode(query);
      break;
    }
  }
  if (rng.unit() < options_.signed_in) out.session = any_session();
  return out;
}

std::vector<std::string> search_words(const std::function<std::string(uint32_t)>& title, uint32_t books) {
  std::vector<std::string> words;
  std::unordered_set<std::string> seen;
  for (uint32_t book = 1; book <= books; ++book) {
    std::string word;
    for (char c : title(book) + " ") {
      if (std::isalpha(static_cast<unsigned char>(c))) {
        word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        continue;
      }
      if (word.size() >= 4 && seen.insert(word).second) words.push_back(word);
      word.clear();
    }
  }
  return words;
}

std::vector<uint32_t> spread_users(uint32_t count, uint32_t users) {
  std::vector<uint32_t> out(count);
  for (uint32_t i = 0; i < count; ++i) out[i] = 1 + static_cast<uint32_t>(uint64_t{i} * users / count);
  return out;
}

std::string review_sentence(app::Rng& rng) {
  static constexpr std::array<std::string_view, 6> kOpeners = {"A", "Truly a", "Quite a", "Such a", "Simply a",
                                                                "Altogether a"};
  static constexpr std::array<std::string_view, 10> kQualities = {
      "gripping", "gentle", "clever", "slow", "haunting", "warm", "sprawling", "tender", "sharp", "strange"};
  static constexpr std::array<std::string_view, 6> kThings = {"story", "novel", "read", "tale", "book", "page-turner"};
  static constexpr std::array<std::string_view, 8> kVerdicts = {
      "I could not put it down",   "worth every page", "for a rainy afternoon", "better than I hoped",
      "the ending surprised me",   "a little too long", "I will read it again", "recommended to friends"};
  std::string out;
  out.append(rng.pick(kOpeners)).append(" ").append(rng.pick(kQualities)).append(" ").append(rng.pick(kThings));
  out.append(", ").append(rng.pick(kVerdicts)).append(".");
  return out;
}

std::string form_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '*') {
      out.push_back(c);
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    }
  }
  return out;
}

std::string request_bytes(const PlannedRequest& request, std::string_view host, std::string_view session_token) {
  const bool post = request.kind == RequestKind::kPost;
  std::string out;
  out.reserve(128 + request.target.size() + host.size() + session_token.size() + request.body.size());
  out.append(post ? "POST " : "GET ").append(request.target).append(" HTTP/1.1\r\nHost: ").append(host);
  out.append("\r\nUser-Agent: edge-demo-load\r\n");
  if (!session_token.empty()) out.append("Cookie: session=").append(session_token).append("\r\n");
  if (post) {
    out.append("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ");
    out.append(std::to_string(request.body.size())).append("\r\n");
  }
  out.append("\r\n").append(request.body);
  return out;
}

size_t LatencyHistogram::bucket_of(uint64_t ns) {
  ns = std::clamp(ns, kMinNs, kMaxNs);
  const int exponent = std::bit_width(ns) - 1;
  const uint64_t sub = (ns >> (exponent - kSubBits)) - (uint64_t{1} << kSubBits);
  return (static_cast<size_t>(exponent - kFirstExponent) << kSubBits) + sub;
}

uint64_t LatencyHistogram::middle_of(size_t bucket) {
  const int shift = static_cast<int>(bucket >> kSubBits) + kFirstExponent - kSubBits;
  const uint64_t sub = bucket & ((size_t{1} << kSubBits) - 1);
  const uint64_t low = ((uint64_t{1} << kSubBits) + sub) << shift;
  return low + ((uint64_t{1} << shift) >> 1);
}

void LatencyHistogram::record(uint64_t ns) {
  ++buckets_[bucket_of(ns)];
  ++count_;
  min_ = std::min(min_, ns);
  max_ = std::max(max_, ns);
}

uint64_t LatencyHistogram::percentile_ns(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  const uint64_t wanted = std::clamp<uint64_t>(rank, 1, count_);
  // The extremes are known exactly, even beyond the buckets' range.
  if (wanted == 1) return min_;
  if (wanted == count_) return max_;
  uint64_t seen = 0;
  for (size_t bucket = 0; bucket < kBuckets; ++bucket) {
    seen += buckets_[bucket];
    // The bucket's middle is within half a bucket of every value in it.
    if (seen >= wanted) return std::clamp(middle_of(bucket), min_, max_);
  }
  return max_;
}

void Results::record_answer(RequestKind kind, int status, bool signed_in, uint64_t latency_ns,
                            std::string_view location) {
  ++requests;
  latency.record(latency_ns);
  if (signed_in) ++signed_in_requests;
  if (status >= 200 && status < 600) ++this->status[static_cast<size_t>(status / 100 - 2)];
  if (kind == RequestKind::kPost) {
    // The site sends a post without a valid session to the login page, with a 303 as well.
    if (status == 303) ++(location.substr(0, 6) == "/login" ? posts_to_login : posts);
  } else if (status >= 200 && status < 300) {
    ++pages[static_cast<size_t>(page_of(kind))];
  }
}

uint64_t Results::error_count() const { return std::accumulate(errors.begin(), errors.end(), uint64_t{0}); }

std::array<uint64_t, kFragmentKinds> fragment_uses(const Results& results) {
  std::array<uint64_t, kFragmentKinds> uses{};
  for (size_t page = 0; page < kPageKinds; ++page)
    for (size_t fragment = 0; fragment < kFragmentKinds; ++fragment)
      uses[fragment] += results.pages[page] * kPageFragments[page][fragment];
  return uses;
}

std::string summary_text(const Results& r) {
  std::string out;
  out += "seconds:       " + format("%.2f", r.seconds) + " (" + std::to_string(r.connections) + " connections)\n";
  out += "logins:        " + std::to_string(r.logins) + "\n";
  out += "requests:      " + std::to_string(r.requests) + " (" + format("%.1f", r.requests_per_second()) + " req/s)\n";
  out += "status:        2xx " + std::to_string(r.status[0]) + "  3xx " + std::to_string(r.status[1]) + "  4xx " +
         std::to_string(r.status[2]) + "  5xx " + std::to_string(r.status[3]) + "\n";
  out += "errors:        " + std::to_string(r.error_count());
  std::string kinds;
  for (size_t kind = 0; kind < kErrorKinds; ++kind) {
    if (r.errors[kind] == 0) continue;
    kinds += (kinds.empty() ? "" : ", ") + std::string(kErrorNames[kind]) + " " + std::to_string(r.errors[kind]);
  }
  if (!kinds.empty()) out += " (" + kinds + ")";
  out += "\n";
  out += "latency ms:    p50 " + ms(r.latency.percentile_ns(0.50)) + "  p90 " + ms(r.latency.percentile_ns(0.90)) +
         "  p99 " + ms(r.latency.percentile_ns(0.99)) + "  max " + ms(r.latency.max_ns()) + "\n";
  out += "pages (2xx):  ";
  for (size_t page = 0; page < kPageKinds; ++page)
    out += " " + std::string(kPageNames[page]) + " " + std::to_string(r.pages[page]);
  out += "\n";
  out += "posts (303):   " + std::to_string(r.posts);
  if (r.posts_to_login) out += " (and " + std::to_string(r.posts_to_login) + " sent to /login: session unknown)";
  out += "\n";
  out += "signed in:     " + std::to_string(r.signed_in_requests) + " requests\n";
  out += "fragment uses:";
  const auto uses = fragment_uses(r);
  for (size_t fragment = 0; fragment < kFragmentKinds; ++fragment)
    out += " " + std::string(kFragmentNames[fragment]) + " " + std::to_string(uses[fragment]);
  out += "\n";
  return out;
}

std::string results_json(const Results& r) {
  const auto named = [](auto names, const auto& values) {
    std::string out = "{";
    for (size_t i = 0; i < names.size(); ++i)
      out += (i ? ", \"" : "\"") + std::string(names[i]) + "\": " + std::to_string(values[i]);
    return out + "}";
  };
  static constexpr std::array<std::string_view, 4> kStatusNames = {"2xx", "3xx", "4xx", "5xx"};
  std::string out = "{";
  out += "\"seconds\": " + format("%.3f", r.seconds);
  out += ", \"connections\": " + std::to_string(r.connections);
  out += ", \"requests\": " + std::to_string(r.requests);
  out += ", \"requests_per_second\": " + format("%.1f", r.requests_per_second());
  out += ", \"logins\": " + std::to_string(r.logins);
  out += ", \"status\": " + named(kStatusNames, r.status);
  out += ", \"errors\": " + std::to_string(r.error_count());
  out += ", \"latency_ms\": {\"p50\": " + ms(r.latency.percentile_ns(0.50)) + ", \"p90\": " +
         ms(r.latency.percentile_ns(0.90)) + ", \"p99\": " + ms(r.latency.percentile_ns(0.99)) + ", \"max\": " +
         ms(r.latency.max_ns()) + "}";
  out += ", \"pages\": " + named(kPageNames, r.pages);
  out += ", \"posts\": " + std::to_string(r.posts);
  out += ", \"posts_to_login\": " + std::to_string(r.posts_to_login);
  out += ", \"signed_in_requests\": " + std::to_string(r.signed_in_requests);
  out += ", \"fragment_uses\": " + named(kFragmentNames, fragment_uses(r));
  out += "}\n";
  return out;
}

}  // namespace edge::load
