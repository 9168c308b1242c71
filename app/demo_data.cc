#include "app/demo_data.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "app/query.h"
#include "app/rng.h"

namespace edge::app {

namespace {

enum class Stream : uint64_t {
  kAuthorOrder = 1,
  kBook,
  kReview,
  kTitle,
  kBlurb,
  kAuthorName,
  kUserName,
  kReviewText,
  kPicks,
};

Rng stream(uint64_t seed, Stream purpose, uint64_t id = 0) {
  Rng mixer{seed ^ (static_cast<uint64_t>(purpose) << 56) ^ (id * 0xD1B54A32D192ED03ull)};
  return Rng{mixer.next()};
}

constexpr std::array<std::string_view, 48> kAdjectives = {
    "Silent",  "Hidden",   "Last",      "Lost",     "Golden",   "Broken",     "Quiet",    "Secret",
    "Burning", "Frozen",   "Distant",   "Forgotten", "Crimson", "Wild",       "Gentle",   "Hollow",
    "Little",  "Long",     "Midnight",  "Northern", "Paper",    "Restless",   "Salt",     "Second",
    "Small",   "Stolen",   "Strange",   "Sunken",   "Velvet",   "Wandering",  "Invisible", "Painted",
    "Drowned", "Glass",    "Iron",      "Electric", "Patient",  "Borrowed",   "Bitter",   "Bright",
    "Early",   "Final",    "Folded",    "Unfinished", "Copper", "Open",       "Narrow",   "Amber"};

constexpr std::array<std::string_view, 64> kNouns = {
    "Garden",   "River",     "House",   "Letter",    "Map",       "Lighthouse", "Orchard",  "Harbour",
    "Clock",    "Library",   "Island",  "Bridge",    "Winter",    "Promise",    "Archive",  "Mirror",
    "Mountain", "Station",   "Kitchen", "Window",    "Forest",    "Daughter",   "Son",      "Sister",
    "Brother",  "Widow",     "Teacher", "Painter",   "Cartographer", "Bookseller", "Gardener", "Astronomer",
    "Detective", "Fisherman", "Stranger", "King",    "Queen",     "Thief",      "Traveller", "Witness",
    "Shadow",   "Song",      "Storm",   "Tide",      "Road",      "Ship",       "Wolf",     "Fox",
    "Crow",     "Hour",      "Year",    "Summer",    "Night",     "Morning",    "Inheritance", "Silence",
    "Return",   "Door",      "Field",   "Valley",    "Sea",       "City",       "Village",  "Lantern"};

constexpr std::array<std::string_view, 32> kPlaces = {
    "Lisbon",  "Prague",  "Vienna",     "Trieste",   "Galway",     "Bergen",  "Kyoto",     "Valparaiso",
    "Odessa",  "Tangier", "Palermo",    "Riga",      "Hamburg",    "Krakow",  "Lyon",      "Porto",
    "Tallinn", "Salzburg", "Bruges",    "Seville",   "Edinburgh",  "Marseille", "Zanzibar", "Quebec",
    "Istanbul", "Naples", "Montevideo", "Alexandria", "Bologna",   "Ghent",   "Dublin",    "Trondheim"};

constexpr std::array<std::string_view, 24> kVerbs = {
    "Sleeps", "Burns",  "Falls",  "Sings",   "Wakes",  "Returns", "Breaks", "Waits",
    "Remembers", "Listens", "Turns", "Rises", "Dreams", "Forgets", "Speaks", "Drowns",
    "Bends",  "Freezes", "Opens", "Ends",    "Begins", "Wanders", "Shines", "Whispers"};

constexpr std::array<std::string_view, 64> kFirstNames = {
    "Mila",   "Jonas",  "Clara",  "Elias",   "Ines",   "Tomas",  "Freya",  "Oskar",
    "Lena",   "Mateo",  "Ada",    "Rafael",  "Nora",   "Felix",  "Ivy",    "Henrik",
    "Sofia",  "Emil",   "Hanna",  "Arturo",  "Maren",  "Luca",   "Alma",   "Pavel",
    "Greta",  "Samuel", "Rosa",   "Anton",   "Ida",    "Marek",  "Vera",   "Benedikt",
    "Olga",   "Ruben",  "Elif",   "Kenji",   "Amara",  "Nikolai", "Leila", "Tobias",
    "Zora",   "Hugo",   "Signe",  "Dario",   "Yara",   "Casper", "Edith",  "Milan",
    "Liv",    "Joaquin", "Agnes", "Stellan", "Noor",   "Bruno",  "Thea",   "Ciaran",
    "Marta",  "Viktor", "Esme",   "Aurelio", "Britt",  "Kasimir", "Lucia", "Wendel"};

constexpr std::array<std::string_view, 96> kLastNames = {
    "Hart",     "Lindqvist", "Moreau",   "Okafor",    "Brandt",   "Castell",  "Novak",    "Ferreira",
    "Halloran", "Ibsen",     "Kowalski", "Larsen",    "Marchetti", "Nakamura", "Osei",    "Petrov",
    "Quinlan",  "Rasmussen", "Santoro",  "Tanaka",    "Ulrich",   "Valente",  "Weller",   "Yilmaz",
    "Zeller",   "Abbott",    "Bellamy",  "Carver",    "Delacroix", "Eriksen", "Fairweather", "Galloway",
    "Holm",     "Iversen",   "Jansen",   "Keller",    "Lowry",    "Mendes",   "Nygaard",  "Oliveira",
    "Pascal",   "Reyes",     "Sorensen", "Thorne",    "Underwood", "Vasquez", "Winter",   "Achterberg",
    "Blackwood", "Costa",    "Dunmore",  "Esposito",  "Falk",     "Grimaldi", "Hayward",  "Janssen",
    "Kinsella", "Lacroix",   "Mercer",   "Nilsen",    "Orlov",    "Prescott", "Rinaldi",  "Strand",
    "Takahashi", "Vidal",    "Whitlock", "Aalto",     "Baptiste", "Crane",    "Dahl",     "Eberhardt",
    "Frost",    "Gallagher", "Hedlund",  "Ashby",     "Kavanagh", "Lund",     "Mazur",    "Navarro",
    "Ostrowski", "Pellegrini", "Rowe",   "Sandoval",  "Tremaine", "Varga",    "Wexley",   "Young",
    "Zamora",   "Beaumont",  "Calloway", "Drummond",  "Everly",   "Fontaine", "Gould",    "Hawthorne"};

// Single-word tags first: with tag popularity skewed towards low ids, they are the big ones.
constexpr std::array<std::string_view, 100> kTagWords = {
    "fiction",     "fantasy",     "crime",      "romance",    "thriller",    "history",     "poetry",
    "biography",   "science",     "travel",     "cooking",    "philosophy",  "mystery",     "horror",
    "humour",      "classics",    "drama",      "adventure",  "children",    "memoir",      "essays",
    "nature",      "art",         "music",      "politics",   "economics",   "psychology",  "religion",
    "mythology",   "war",         "family",     "friendship", "sea",         "mountains",   "cities",
    "islands",     "gardens",     "animals",    "cats",       "dogs",        "horses",      "birds",
    "space",       "robots",      "magic",      "dragons",    "ghosts",      "vampires",    "detectives",
    "spies",       "pirates",     "kings",      "queens",     "letters",     "diaries",     "journeys",
    "exile",       "migration",   "childhood",  "old-age",    "love",        "grief",       "hope",
    "revenge",     "betrayal",    "survival",   "identity",   "language",    "books",       "libraries",
    "bookshops",   "teachers",    "doctors",    "lawyers",    "artists",     "musicians",   "sports",
    "football",    "chess",       "food",       "wine",       "coffee",      "trains",      "ships",
    "aviation",    "architecture", "photography", "film",     "theatre",     "dance",       "fashion",
    "medicine",    "mathematics", "physics",    "astronomy",  "geology",     "climate",     "ocean",
    "forests",     "winter"};

constexpr std::array<std::string_view, 64> kTagModifiers = {
    "dark",       "cosy",      "historical", "urban",     "epic",       "literary",  "nordic",   "japanese",
    "victorian",  "modern",    "short",      "illustrated", "french",   "russian",   "italian",  "german",
    "latin-american", "african", "irish",    "scottish",  "medieval",   "ancient",   "future",   "alternate",
    "funny",      "sad",       "slow",       "gentle",    "violent",    "political", "rural",    "small-town",
    "coastal",    "arctic",    "desert",     "tropical",  "wartime",    "postwar",   "interwar", "colonial",
    "feminist",   "queer",     "experimental", "minimalist", "gothic",  "noir",      "cosmic",   "domestic",
    "academic",   "courtroom", "seafaring",  "mountain",  "island",     "railway",   "culinary", "musical",
    "debut",      "award-winning", "translated", "banned",  "forgotten", "cult",    "teen",     "bedtime"};

constexpr std::array<std::string_view, 12> kBlurbKinds = {
    "quiet novel",   "funny novel",     "sprawling saga",   "tender story",
    "unsettling tale", "gripping thriller", "slow-burning mystery", "luminous memoir",
    "sharp satire",  "patient chronicle", "modern fable",    "short novel"};

constexpr std::array<std::string_view, 16> kBlurbPeople = {
    "a retired teacher",    "an estranged sister", "a young cartographer", "an old bookseller",
    "a lonely astronomer",  "a family of fishermen", "a runaway boy",        "a widowed gardener",
    "a disgraced detective", "a reluctant heir",    "a ship's cook",        "a forger of maps",
    "a night-shift nurse",  "a travelling pianist",  "a village postman",    "a retired boxer"};

constexpr std::array<std::string_view, 16> kBlurbDeeds = {
    "finds a letter that should not exist",    "returns home after thirty years",
    "tries to save a failing bookshop",        "inherits a house full of stopped clocks",
    "follows a map drawn by a stranger",       "keeps a secret for one long winter",
    "learns to read the stars",                "loses everything in a single night",
    "opens a restaurant with no menu",         "walks across a country on foot",
    "takes the wrong train and stays",         "writes to a pen friend who never answers",
    "hides a fugitive in the attic",           "counts the birds on an island",
    "tries to forget a summer",                "searches for a missing manuscript"};

constexpr std::array<std::string_view, 16> kBlurbEndings = {
    "Critics called it impossible to put down.",        "The ending still divides its readers.",
    "The first edition sold out in a week.",            "It has been translated into thirty languages.",
    "Nothing much happens, and all of it matters.",     "It is funnier than it has any right to be.",
    "Its last chapter is the one everybody quotes.",    "Book clubs have argued about it for years.",
    "It was written in a single winter.",               "The author never wrote a sequel, on purpose.",
    "Its map of the town is printed inside the cover.", "It began as a series of letters to a newspaper.",
    "It is shorter than it looks and longer than it feels.", "Every chapter ends on a question.",
    "It was turned down by eleven publishers.",         "Its narrator is not to be trusted."};

constexpr std::array<std::string_view, 40> kReviewSentences = {
    "I could not put it down.",
    "The middle drags a little, but the ending is worth it.",
    "Beautifully written.",
    "Not my kind of book, but I can see why people love it.",
    "The characters felt like old friends by the end.",
    "I read it in one sitting.",
    "A bit predictable.",
    "The translation is excellent.",
    "I wish it had been twice as long.",
    "My book club argued about it for hours.",
    "The first fifty pages are slow; keep going.",
    "It made me want to travel.",
    "I laughed out loud on the train.",
    "The ending broke my heart.",
    "I did not believe a word of it, and enjoyed every one.",
    "Too many characters to keep track of.",
    "The descriptions of the sea are wonderful.",
    "I bought it for the cover and stayed for the story.",
    "It reminded me of my grandmother's house.",
    "The dialogue is sharp and often very funny.",
    "I guessed the twist early, which spoiled it a little.",
    "A perfect book for a rainy weekend.",
    "I have already given three copies away.",
    "The audiobook is even better.",
    "It took me a month, but I am glad I finished it.",
    "The author clearly loves these people.",
    "Some chapters are brilliant, others forgettable.",
    "I will read everything this author writes.",
    "The pacing is uneven.",
    "It stayed with me for weeks.",
    "Lovely, gentle and a little sad.",
    "The villain is the best thing in it.",
    "The map at the front was a great help.",
    "It is better the second time.",
    "I expected more from the ending.",
    "Every sentence is doing something.",
    "A quiet book that sneaks up on you.",
    "The historical detail is impressive.",
    "I would have cut a hundred pages.",
    "Recommended to anyone who loves libraries."};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string join(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

// Fills `index` from (key, item) pairs with keys 1..keys, items kept in the order given.
template <typename Pairs>
void build_index(uint32_t keys, const Pairs& pairs, std::vector<uint32_t>& starts, std::vector<uint32_t>& items) {
  starts.assign(keys + 1, 0);
  for (const auto& [key, item] : pairs) ++starts[key];
  std::partial_sum(starts.begin(), starts.end(), starts.begin());
  items.assign(starts.back(), 0);
  std::vector<uint32_t> fill(starts.begin(), starts.end() - 1);
  for (const auto& [key, item] : pairs) items[fill[key - 1]++] = item;
}

}  // namespace

DemoData::DemoData(uint64_t seed, DemoSizes sizes) : seed_(seed), sizes_(sizes) {
  sizes_.tags = std::min<uint32_t>(sizes_.tags, 65535);
  sizes_.users = std::min<uint32_t>(sizes_.users, 65535);

  // Every author gets one of the first books (in an order the seed shuffles); the other books go
  // to authors chosen with a skew, so some authors are prolific.
  std::vector<uint32_t> author_order(sizes_.authors);
  std::iota(author_order.begin(), author_order.end(), 1);
  Rng order = stream(seed, Stream::kAuthorOrder);
  for (size_t i = author_order.size(); i > 1; --i) std::swap(author_order[i - 1], author_order[order.below(static_cast<uint32_t>(i))]);

  books_.resize(sizes_.books);
  std::vector<std::pair<uint32_t, uint32_t>> author_pairs, tag_pairs;
  author_pairs.reserve(sizes_.books);
  tag_pairs.reserve(static_cast<size_t>(sizes_.books) * 3);
  for (uint32_t id = 1; id <= sizes_.books; ++id) {
    Rng r = stream(seed, Stream::kBook, id);
    Book& b = books_[id - 1];
    b.author = id <= sizes_.authors ? author_order[id - 1] : (sizes_.authors ? r.skewed(sizes_.authors, 2.0) : 0);
    b.year = static_cast<uint16_t>(2024 - static_cast<uint32_t>(170 * std::pow(r.unit(), 2.5)));
    b.pages = static_cast<uint16_t>(80 + r.below(420) + r.below(400));
    // 1 to 5 tags, 3 the most common.
    static constexpr uint32_t kTagCountWeights[kMaxTagsPerBook] = {15, 25, 30, 20, 10};
    uint32_t roll = r.below(100), want = 1;
    for (uint32_t w : kTagCountWeights) {
      if (roll < w) break;
      roll -= w;
      ++want;
    }
    want = std::min(want, sizes_.tags);
    b.tag_count = 0;
    for (int attempt = 0; b.tag_count < want && attempt < 64; ++attempt) {
      auto tag = static_cast<uint16_t>(r.skewed(sizes_.tags, 3.0));
      if (std::find(b.tags, b.tags + b.tag_count, tag) == b.tags + b.tag_count) b.tags[b.tag_count++] = tag;
    }
    std::sort(b.tags, b.tags + b.tag_count);
    if (b.author) author_pairs.emplace_back(b.author, id);
    for (uint8_t i = 0; i < b.tag_count; ++i) tag_pairs.emplace_back(b.tags[i], id);
  }
  build_index(sizes_.authors, author_pairs, author_books_.starts, author_books_.items);
  build_index(sizes_.tags, tag_pairs, tag_books_.starts, tag_books_.items);

  tags_by_popularity_.resize(sizes_.tags);
  std::iota(tags_by_popularity_.begin(), tags_by_popularity_.end(), 1);
  std::stable_sort(tags_by_popularity_.begin(), tags_by_popularity_.end(), [&](uint16_t a, uint16_t b) {
    return tag_books(a).size() > tag_books(b).size();
  });

  // Reviews are numbered after sorting by book and time, so a book's reviews are a run of
  // ascending ids, oldest first.
  reviews_.resize(sizes_.books && sizes_.users ? sizes_.reviews : 0);
  Rng rr = stream(seed, Stream::kReview);
  static constexpr uint32_t kRatingWeights[5] = {5, 10, 20, 35, 30};
  for (DemoReview& review : reviews_) {
    review.book = rr.skewed(sizes_.books, 2.0);
    review.user = static_cast<uint16_t>(1 + rr.below(sizes_.users));
    uint32_t roll = rr.below(100);
    review.rating = 1;
    for (uint32_t w : kRatingWeights) {
      if (roll < w) break;
      roll -= w;
      ++review.rating;
    }
    review.time = kDemoEpoch + static_cast<int64_t>(rr.below(19u * 365 * 86400));
  }
  std::sort(reviews_.begin(), reviews_.end(), [](const DemoReview& a, const DemoReview& b) {
    if (a.book != b.book) return a.book < b.book;
    if (a.time != b.time) return a.time < b.time;
    if (a.user != b.user) return a.user < b.user;
    return a.rating < b.rating;
  });
  std::vector<std::pair<uint32_t, uint32_t>> review_pairs;
  review_pairs.reserve(reviews_.size());
  for (uint32_t i = 0; i < reviews_.size(); ++i) review_pairs.emplace_back(reviews_[i].book, i + 1);
  build_index(sizes_.books, review_pairs, book_reviews_.starts, book_reviews_.items);
  sizes_.reviews = static_cast<uint32_t>(reviews_.size());

  // A name already taken gets the user's id appended; base names have no digits, so the result
  // is unique.
  user_names_.reserve(sizes_.users);
  users_by_name_.reserve(sizes_.users);
  for (uint32_t id = 1; id <= sizes_.users; ++id) {
    Rng r = stream(seed, Stream::kUserName, id);
    std::string name = lower(r.pick(kFirstNames)) + "." + lower(r.pick(kLastNames));
    if (users_by_name_.count(name)) name += std::to_string(id);
    users_by_name_.emplace(name, id);
    user_names_.push_back(std::move(name));
  }
}

std::span<const uint16_t> DemoData::book_tags(uint32_t book) const {
  const Book& b = books_[book - 1];
  return {b.tags, b.tag_count};
}

std::span<const uint32_t> DemoData::book_reviews(uint32_t book) const { return book_reviews_.of(book); }
std::span<const uint32_t> DemoData::author_books(uint32_t author) const { return author_books_.of(author); }
std::span<const uint32_t> DemoData::tag_books(uint32_t tag) const { return tag_books_.of(tag); }

std::string DemoData::book_title(uint32_t book) const {
  Rng r = stream(seed_, Stream::kTitle, book);
  switch (r.below(8)) {
    case 0: return join({"The ", r.pick(kAdjectives), " ", r.pick(kNouns)});
    case 1: return join({"The ", r.pick(kNouns), " of ", r.pick(kPlaces)});
    case 2: return join({"A ", r.pick(kNouns), " in ", r.pick(kPlaces)});
    case 3: return join({"When the ", r.pick(kNouns), " ", r.pick(kVerbs)});
    case 4: return join({r.pick(kFirstNames), " and the ", r.pick(kAdjectives), " ", r.pick(kNouns)});
    case 5: return join({"The ", r.pick(kNouns), "'s ", r.pick(kNouns)});
    case 6: return join({r.pick(kAdjectives), " ", r.pick(kNouns)});
    default: return join({"The ", r.pick(kAdjectives), " ", r.pick(kNouns), " of ", r.pick(kPlaces)});
  }
}

std::string DemoData::book_blurb(uint32_t book) const {
  Rng r = stream(seed_, Stream::kBlurb, book);
  const std::string_view kind = r.pick(kBlurbKinds);
  const bool vowel = std::string_view("aeiou").find(kind[0]) != std::string_view::npos;
  return join({vowel ? "An " : "A ", kind, " about ", r.pick(kBlurbPeople), " who ", r.pick(kBlurbDeeds), " in ",
               r.pick(kPlaces), ". ", r.pick(kBlurbEndings)});
}

std::string DemoData::author_name(uint32_t author) const {
  Rng r = stream(seed_, Stream::kAuthorName, author);
  const std::string_view first = r.pick(kFirstNames);
  const std::string_view last = r.pick(kLastNames);
  if (r.below(10) < 3) {
    const char initial[] = {static_cast<char>('A' + r.below(26)), '.', ' ', '\0'};
    return join({first, " ", initial, last});
  }
  return join({first, " ", last});
}

std::string DemoData::tag_name(uint32_t tag) const {
  constexpr uint32_t kWords = kTagWords.size();
  constexpr uint32_t kCompounds = kWords * kTagModifiers.size();
  uint32_t k = tag - 1;
  if (k < kWords) return std::string(kTagWords[k]);
  k -= kWords;
  if (k < kCompounds) return join({kTagModifiers[k / kWords], " ", kTagWords[k % kWords]});
  k -= kCompounds;
  return join({kTagWords[k % kWords], " ", std::to_string(k / kWords + 2)});
}

std::optional<uint32_t> DemoData::find_user(std::string_view name_or_id) const {
  if (auto id = parse_uint(name_or_id, sizes_.users); id && *id >= 1) return static_cast<uint32_t>(*id);
  auto it = users_by_name_.find(std::string(name_or_id));
  if (it == users_by_name_.end()) return std::nullopt;
  return it->second;
}

std::string DemoData::review_text(uint32_t id) const {
  Rng r = stream(seed_, Stream::kReviewText, id);
  const uint32_t sentences = 2 + r.below(3);
  std::string out;
  uint32_t last = kReviewSentences.size();
  for (uint32_t i = 0; i < sentences; ++i) {
    uint32_t s = r.below(kReviewSentences.size());
    if (s == last) s = (s + 1) % kReviewSentences.size();
    if (i) out.push_back(' ');
    out.append(kReviewSentences[s]);
    last = s;
  }
  return out;
}

std::vector<uint32_t> DemoData::picks(size_t n) const {
  std::vector<uint32_t> out;
  if (sizes_.books == 0) return out;
  n = std::min<size_t>(n, sizes_.books);
  Rng r = stream(seed_, Stream::kPicks);
  while (out.size() < n) {
    uint32_t book = 1 + r.below(sizes_.books);
    if (std::find(out.begin(), out.end(), book) == out.end()) out.push_back(book);
  }
  return out;
}

size_t DemoData::memory_bytes() const {
  size_t bytes = books_.capacity() * sizeof(Book) + reviews_.capacity() * sizeof(DemoReview) +
                 tags_by_popularity_.capacity() * sizeof(uint16_t);
  for (const Index* index : {&author_books_, &tag_books_, &book_reviews_})
    bytes += (index->starts.capacity() + index->items.capacity()) * sizeof(uint32_t);
  for (const std::string& name : user_names_) bytes += sizeof name + name.capacity() * 2 + 32;  // and its map entry
  return bytes;
}

}  // namespace edge::app
