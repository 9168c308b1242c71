#include "compress/coding.h"

#include <algorithm>
#include <array>

namespace edge::compress {

std::string_view coding_name(Coding coding) {
  switch (coding) {
    case Coding::kBr: return "br";
    case Coding::kZstd: return "zstd";
    case Coding::kGzip: return "gzip";
    case Coding::kIdentity: break;
  }
  return "identity";
}

std::optional<Coding> parse_coding(std::string_view token) {
  if (http::iequals(token, "br")) return Coding::kBr;
  if (http::iequals(token, "zstd")) return Coding::kZstd;
  if (http::iequals(token, "gzip") || http::iequals(token, "x-gzip")) return Coding::kGzip;
  if (http::iequals(token, "identity")) return Coding::kIdentity;
  return std::nullopt;
}

namespace {

// RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
std::optional<int> parse_qvalue(std::string_view text) {
  if (text.empty() || (text[0] != '0' && text[0] != '1')) return std::nullopt;
  const bool one = text[0] == '1';
  if (text.size() == 1) return one ? 1000 : 0;
  if (text[1] != '.' || text.size() > 5) return std::nullopt;
  int value = 0;
  int digits = 0;
  for (char c : text.substr(2)) {
    if (c < '0' || c > '9' || (one && c != '0')) return std::nullopt;
    value = value * 10 + (c - '0');
    ++digits;
  }
  for (; digits < 3; ++digits) value *= 10;
  return one ? 1000 : value;
}

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

struct Weights {
  static constexpr int kUnlisted = -1;
  std::array<int, kCodings> listed{kUnlisted, kUnlisted, kUnlisted, kUnlisted};
  int star = kUnlisted;
};

void lower_to(int& slot, int weight) { slot = slot == Weights::kUnlisted ? weight : std::min(slot, weight); }

// One member: `coding *( OWS ";" OWS "q=" qvalue )`; anything else makes it count for nothing.
void read_member(std::string_view member, Weights& weights) {
  size_t semicolon = member.find(';');
  std::string_view name = http::trim(member.substr(0, semicolon));
  if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char)) return;
  int weight = 1000;
  while (semicolon != std::string_view::npos) {
    member.remove_prefix(semicolon + 1);
    semicolon = member.find(';');
    std::string_view parameter = http::trim(member.substr(0, semicolon));
    if (parameter.size() < 2 || (parameter[0] != 'q' && parameter[0] != 'Q') || parameter[1] != '=') return;
    std::optional<int> q = parse_qvalue(parameter.substr(2));
    if (!q) return;
    weight = std::min(weight, *q);
  }
  if (name == "*") return lower_to(weights.star, weight);
  if (std::optional<Coding> coding = parse_coding(name))
    lower_to(weights.listed[static_cast<size_t>(*coding)], weight);
}

}  // namespace

Coding choose_coding(const http::Headers& request, std::span<const Coding> offered) {
  Weights weights;
  bool any_field = false;
  for (size_t i = 0; i < request.size(); ++i) {
    if (!http::iequals(request.name(i), "accept-encoding")) continue;
    any_field = true;
    http::for_each_token(request.value(i), [&](std::string_view member) { read_member(member, weights); });
  }
  if (!any_field) return Coding::kIdentity;
  auto weight_of = [&](Coding coding) {
    const int listed = weights.listed[static_cast<size_t>(coding)];
    if (listed != Weights::kUnlisted) return listed;
    return weights.star == Weights::kUnlisted ? 0 : weights.star;
  };
  Coding best = Coding::kIdentity;
  int best_weight = 0;
  for (Coding coding : offered) {
    if (coding == Coding::kIdentity) continue;
    const int weight = weight_of(coding);
    if (weight > best_weight) {
      best = coding;
      best_weight = weight;
    }
  }
  const int identity = weights.listed[static_cast<size_t>(Coding::kIdentity)];
  if (identity != Weights::kUnlisted && identity > best_weight) return Coding::kIdentity;
  return best;
}

std::optional<Coding> applied_coding(const http::Headers& response) {
  if (response.count("content-encoding") != 1) return std::nullopt;
  const std::string_view value = http::trim(*response.get("content-encoding"));
  std::optional<Coding> coding = parse_coding(value);
  if (coding == Coding::kIdentity) return std::nullopt;
  return coding;
}

http::Headers without_vary_accept_encoding(const http::Headers& response) {
  http::Headers out;
  for (size_t i = 0; i < response.size(); ++i) {
    if (!http::iequals(response.name(i), "vary")) {
      out.add(response.name(i), response.value(i));
      continue;
    }
    std::string kept;
    http::for_each_token(response.value(i), [&](std::string_view member) {
      if (http::iequals(member, "accept-encoding")) return;
      if (!kept.empty()) kept.append(", ");
      kept.append(member);
    });
    if (!kept.empty()) out.add(response.name(i), kept);
  }
  return out;
}

bool type_listed(std::span<const std::string> types, std::string_view content_type) {
  std::string_view media = http::trim(content_type.substr(0, content_type.find(';')));
  const size_t slash = media.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == media.size()) return false;
  for (const std::string& type : types) {
    if (type.ends_with("/*")) {
      if (http::iequals(media.substr(0, slash + 1), std::string_view(type).substr(0, type.size() - 1))) return true;
    } else if (http::iequals(media, type)) {
      return true;
    }
  }
  return false;
}

bool no_transform(const http::Headers& response) {
  bool found = false;
  for (size_t i = 0; i < response.size() && !found; ++i) {
    if (!http::iequals(response.name(i), "cache-control")) continue;
    http::for_each_token(response.value(i), [&](std::string_view directive) {
      if (http::iequals(directive, "no-transform")) found = true;
    });
  }
  return found;
}

bool compressible(const Rules& rules, int status, const http::Headers& response, std::optional<uint64_t> length) {
  if (!rules.enabled || rules.codings.empty()) return false;
  if (status != 200 && status != 203 && status < 400) return false;
  if (length && *length < rules.min_length) return false;
  // One pass over the fields (this runs for every hit and pass): names told apart by length first.
  std::string_view type;
  int types = 0;
  bool coded = false;
  for (size_t i = 0; i < response.size(); ++i) {
    const std::string_view name = response.name(i);
    if (name.size() == 12 && http::iequals(name, "content-type")) {
      type = response.value(i);
      ++types;
    } else if (name.size() == 13 && http::iequals(name, "content-range")) {
      return false;
    } else if (name.size() == 16 && http::iequals(name, "content-encoding")) {
      http::for_each_token(response.value(i), [&](std::string_view coding) {
        if (!http::iequals(coding, "identity")) coded = true;
      });
    }
  }
  if (coded || types != 1 || !type_listed(rules.types, type)) return false;
  return !no_transform(response);
}

}  // namespace edge::compress
