// The test API server: an in-memory store with a history of changes, served over HTTP/1.1
// (TLS by default) by one thread per connection. Synchronous I/O keeps each request's story
// readable top to bottom; the few dozen connections a test opens make threads cheap enough.
//
// Faithfulness notes (what the real kube-apiserver does and we copy) are next to the code that
// copies it; the summary is in README.md.
#include "tests/kube/apiserver/test_apiserver.h"

#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/kube/apiserver/selectors.h"
#include "tests/kube/apiserver/tls_material.h"

namespace xlb::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

std::vector<ApiResource> DefaultResources() {
  enum Scope { kCluster, kNamespaced };
  enum Origin { kBuiltIn, kCustom };
  auto r = [](std::string group, std::string version, std::string resource, std::string kind,
              Scope scope, std::vector<std::string> short_names, Origin origin) {
    ApiResource res{.group = group,
                    .version = version,
                    .resource = resource,
                    .kind = kind,
                    .namespaced = scope == kNamespaced,
                    .short_names = short_names,
                    .singular = kind,
                    .custom = origin == kCustom};
    for (auto& c : res.singular) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return res;
  };
  return {
      r("", "v1", "services", "Service", kNamespaced, {"svc"}, kBuiltIn),
      r("", "v1", "endpoints", "Endpoints", kNamespaced, {"ep"}, kBuiltIn),
      r("", "v1", "nodes", "Node", kCluster, {"no"}, kBuiltIn),
      r("", "v1", "namespaces", "Namespace", kCluster, {"ns"}, kBuiltIn),
      r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", kNamespaced, {}, kBuiltIn),
      r("multicluster.x-k8s.io", "v1alpha1", "serviceimports", "ServiceImport", kNamespaced,
        {"svcim"}, kCustom),
      r("multicluster.x-k8s.io", "v1beta1", "serviceimports", "ServiceImport", kNamespaced,
        {"svcim"}, kCustom),
      r("about.k8s.io", "v1alpha1", "clusterproperties", "ClusterProperty", kCluster,
        {"clusterproperty"}, kCustom),
  };
}

namespace {

std::string Base64(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> Unbase64(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else if (c == '=')
      break;
    else
      return std::nullopt;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return out;
}

// ---- small helpers ------------------------------------------------------------------------

std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(uint8_t(s[i + 1])) &&
        std::isxdigit(uint8_t(s[i + 2]))) {
      out += char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string Trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Age(const json& obj) {
  const json* ts = nullptr;
  if (obj.contains("metadata") && obj["metadata"].contains("creationTimestamp")) {
    ts = &obj["metadata"]["creationTimestamp"];
  }
  if (ts == nullptr || !ts->is_string()) return "<unknown>";
  std::tm tm{};
  if (strptime(ts->get<std::string>().c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) {
    return "<unknown>";
  }
  long secs = std::max<long>(0, long(std::time(nullptr) - timegm(&tm)));
  if (secs < 120) return std::to_string(secs) + "s";
  if (secs < 2 * 3600) return std::to_string(secs / 60) + "m";
  if (secs < 2 * 86400) return std::to_string(secs / 3600) + "h";
  return std::to_string(secs / 86400) + "d";
}

std::string RandomSuffix(size_t n) {
  static const char* kChars = "bcdfghjklmnpqrstvwxz2456789";
  static std::mt19937 rng(std::random_device{}());
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kChars[rng() % 27];
  return s;
}

std::string NewUid() {
  unsigned char b[16];
  RAND_bytes(b, sizeof(b));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char out[40];
  std::snprintf(out, sizeof(out),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

std::string GroupVersion(const ApiResource& r) {
  return r.group.empty() ? r.version : r.group + "/" + r.version;
}

std::string StorageKey(const ApiResource& r) {
  return r.group + "/" + r.resource;
}

std::string ObjectKey(const std::string& ns, const std::string& name) {
  return ns + "/" + name;
}

std::string MetaString(const json& obj, const char* field) {
  if (!obj.is_object() || !obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  const json& m = obj["metadata"];
  if (!m.contains(field) || !m[field].is_string()) return "";
  return m[field].get<std::string>();
}

// An HTTP error with a Status body, the way the real server words them.
struct ApiError {
  int code;
  std::string reason;
  std::string message;
  json details = nullptr;  // {"name","group","kind"} when the error is about one object
};

json StatusBody(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", reason},
          {"code", code}};
}

// One line of a watch stream, type first as the real server writes it.
std::string EventLine(const std::string& type, const json& object) {
  return "{\"type\":" + json(type).dump() + ",\"object\":" + object.dump() + "}\n";
}

// The Status reason the real server gives with each HTTP status.
std::string ReasonFor(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "InternalError";
  }
}

// An error about one object, worded and detailed like the real server's:
// `services "web" not found`, details {"name":"web","kind":"services"}.
ApiError ObjectError(int code, const std::string& reason, const ApiResource& r,
                     const std::string& name, const std::string& prefix,
                     const std::string& suffix) {
  std::string group_resource = r.group.empty() ? r.resource : r.resource + "." + r.group;
  json details = {{"name", name}, {"kind", r.resource}};
  if (!r.group.empty()) details["group"] = r.group;
  return ApiError{code, reason, prefix + group_resource + " \"" + name + "\"" + suffix, details};
}

// ---- requests -----------------------------------------------------------------------------

struct Query {
  std::map<std::string, std::string> params;
  bool Has(const std::string& k) const { return params.contains(k); }
  std::string Get(const std::string& k) const {
    auto it = params.find(k);
    return it == params.end() ? "" : it->second;
  }
  bool Flag(const std::string& k) const {
    std::string v = Get(k);
    return v == "1" || v == "true" || v == "True";
  }
};

void ParseTarget(std::string_view target, std::string& path, Query& query) {
  size_t q = target.find('?');
  path = UrlDecode(target.substr(0, q));
  if (q == std::string_view::npos) return;
  for (const auto& kv : Split(target.substr(q + 1), '&')) {
    if (kv.empty()) continue;
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      query.params[UrlDecode(kv)] = "";
    } else {
      query.params[UrlDecode(kv.substr(0, eq))] = UrlDecode(kv.substr(eq + 1));
    }
  }
}

// Where a resource path points: a collection (name empty) or one object.
struct Location {
  const ApiResource* resource = nullptr;
  std::string ns;  // empty: cluster-scoped, or all namespaces
  std::string name;
};

// The selectors of a list or watch request; a bad one is a 400 naming it.
std::pair<std::vector<LabelRequirement>, std::vector<FieldRequirement>> ParseSelectors(
    const Query& query) {
  try {
    return {ParseLabelSelector(query.Get("labelSelector")),
            ParseFieldSelector(query.Get("fieldSelector"))};
  } catch (const std::invalid_argument& e) {
    throw ApiError{400, "BadRequest", e.what()};
  }
}

uint64_t ParseRv(const std::string& s, const char* what) {
  try {
    size_t used = 0;
    uint64_t v = std::stoull(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw ApiError{400, "BadRequest", std::string("invalid ") + what + ": \"" + s + "\""};
}

}  // namespace

// ---- the server ---------------------------------------------------------------------------

class TestApiServer::Impl {
 public:
  explicit Impl(ApiServerOptions options)
      : options_(std::move(options)),
        rv_(options_.initial_resource_version),
        floor_(options_.initial_resource_version),
        tokens_(options_.tokens.begin(), options_.tokens.end()) {
    for (const auto& r : DefaultResources()) AddResource(r);
    if (options_.tls) MakeTls();
  }

  ~Impl() { Stop(); }

  // ---- lifecycle ----

  void Start() {
    std::lock_guard run_lock(run_mu_);
    if (running_) return;
    acceptor_ = std::make_unique<tcp::acceptor>(ioc_);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port_ != 0 ? port_ : options_.port);
    boost::system::error_code ec;
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      acceptor_.reset();
      throw std::runtime_error("test apiserver: cannot listen on 127.0.0.1:" +
                               std::to_string(ep.port()) + ": " + ec.message());
    }
    port_ = acceptor_->local_endpoint().port();
    {
      std::lock_guard lock(mu_);
      stopping_ = false;
    }
    running_ = true;
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  void Stop() {
    std::lock_guard run_lock(run_mu_);
    if (!running_) return;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    // A blocking accept() returns when its socket is shut down; close() from another thread
    // would race with it.
    ::shutdown(acceptor_->native_handle(), SHUT_RDWR);
    accept_thread_.join();
    boost::system::error_code ec;
    acceptor_->close(ec);
    acceptor_.reset();
    std::list<std::unique_ptr<Connection>> conns;
    {
      std::lock_guard lock(conns_mu_);
      for (auto& c : conns_) ::shutdown(c->fd, SHUT_RDWR);
      conns.swap(conns_);
    }
    for (auto& c : conns) c->thread.join();
    running_ = false;
  }

  void Restart(bool new_history) {
    Stop();
    if (new_history) {
      std::lock_guard lock(mu_);
      // An etcd restore: revisions come from another sequence, history is gone, the objects
      // are what the backup held (here: what we had), each with a revision of the new base.
      rv_ = rv_ + 1'000'000 + (rv_ % 997) * 13;
      history_.clear();
      for (auto& [key, objects] : store_) {
        for (auto& [okey, obj] : objects) {
          obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
        }
      }
      floor_ = rv_;
    }
    Start();
  }

  uint16_t port() const { return port_; }

  std::string url() const {
    return std::string(options_.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }

  std::string ca_pem() const { return ca_pem_; }

  void WriteKubeconfig(const std::string& path, const std::string& token) const {
    std::ofstream out(path, std::ios::trunc);
    if (!out) throw std::runtime_error("test apiserver: cannot write kubeconfig " + path);
    out << "apiVersion: v1\nkind: Config\nclusters:\n- name: xlb-test\n  cluster:\n    server: "
        << url() << "\n";
    if (options_.tls) out << "    certificate-authority-data: " << Base64(ca_pem_) << "\n";
    out << "users:\n- name: xlb-test\n  user:\n    token: \"" << token << "\"\n"
        << "contexts:\n- name: xlb-test\n  context:\n    cluster: xlb-test\n    user: xlb-test\n"
        << "    namespace: default\ncurrent-context: xlb-test\n";
    if (!out.flush()) throw std::runtime_error("test apiserver: cannot write kubeconfig " + path);
  }

  void AddResource(const ApiResource& r) {
    std::lock_guard lock(mu_);
    ApiResource copy = r;
    if (copy.singular.empty()) {
      copy.singular = copy.kind;
      std::transform(copy.singular.begin(), copy.singular.end(), copy.singular.begin(),
                     [](unsigned char c) { return std::tolower(c); });
    }
    resources_.push_back(std::make_unique<ApiResource>(std::move(copy)));
  }

  // ---- store, from the test's side ----

  json Create(const std::string& collection_path, json obj) {
    Location loc = CollectionFor(collection_path);
    try {
      std::lock_guard lock(mu_);
      return CreateLocked(loc, std::move(obj));
    } catch (const ApiError& e) {
      throw std::invalid_argument("test apiserver: Create " + collection_path + ": " + e.message);
    }
  }

  json Update(const std::string& collection_path, json obj) {
    Location loc = CollectionFor(collection_path);
    try {
      std::lock_guard lock(mu_);
      loc.name = MetaString(obj, "name");
      return UpdateLocked(loc, std::move(obj), /*check_rv=*/false);
    } catch (const ApiError& e) {
      throw std::invalid_argument("test apiserver: Update " + collection_path + ": " + e.message);
    }
  }

  void Delete(const std::string& collection_path, const std::string& name) {
    Location loc = CollectionFor(collection_path);
    try {
      std::lock_guard lock(mu_);
      loc.name = name;
      DeleteLocked(loc);
    } catch (const ApiError& e) {
      throw std::invalid_argument("test apiserver: Delete " + collection_path + " " + name + ": " +
                                  e.message);
    }
  }

  std::optional<json> Get(const std::string& collection_path, const std::string& name) const {
    Location loc = CollectionFor(collection_path);
    std::lock_guard lock(mu_);
    auto sit = store_.find(StorageKey(*loc.resource));
    if (sit == store_.end()) return std::nullopt;
    std::string ns = loc.resource->namespaced ? (loc.ns.empty() ? "default" : loc.ns) : "";
    auto it = sit->second.find(ObjectKey(ns, name));
    if (it == sit->second.end()) return std::nullopt;
    return Present(*loc.resource, it->second);
  }

  void LoadFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument(path + ": cannot open");
    json doc;
    try {
      in >> doc;
    } catch (const json::exception& e) {
      throw std::invalid_argument(path + ": not JSON: " + e.what());
    }
    json items =
        doc.is_array() ? doc : (doc.is_object() && doc.contains("items") ? doc["items"] : json());
    if (!items.is_array()) {
      throw std::invalid_argument(path + ": expected an array of objects or a List with items");
    }
    std::lock_guard lock(mu_);
    std::vector<std::pair<Location, json>> planned;
    for (size_t i = 0; i < items.size(); ++i) {
      const json& obj = items[i];
      std::string where = path + ": item " + std::to_string(i);
      if (!obj.is_object()) throw std::invalid_argument(where + ": not an object");
      std::string api_version = obj.value("apiVersion", "");
      std::string kind = obj.value("kind", "");
      std::string name = MetaString(obj, "name");
      if (!name.empty()) where += " (" + name + ")";
      if (api_version.empty() || kind.empty()) {
        throw std::invalid_argument(where + ": apiVersion and kind are required");
      }
      const ApiResource* res = nullptr;
      for (const auto& r : resources_) {
        if (GroupVersion(*r) == api_version && r->kind == kind) res = r.get();
      }
      if (res == nullptr) {
        throw std::invalid_argument(where + ": no resource serves " + api_version + " " + kind);
      }
      if (name.empty()) throw std::invalid_argument(where + ": metadata.name is required");
      Location loc{res, res->namespaced ? MetaString(obj, "namespace") : "", ""};
      if (res->namespaced && loc.ns.empty()) loc.ns = "default";
      auto sit = store_.find(StorageKey(*res));
      bool exists = sit != store_.end() && sit->second.contains(ObjectKey(loc.ns, name));
      for (const auto& [l, o] : planned) {
        if (l.resource == res && l.ns == loc.ns && MetaString(o, "name") == name) exists = true;
      }
      if (exists) throw std::invalid_argument(where + ": already exists");
      planned.emplace_back(loc, obj);
    }
    for (auto& [loc, obj] : planned) CreateLocked(loc, std::move(obj));
  }

  std::string resource_version() const {
    std::lock_guard lock(mu_);
    return std::to_string(rv_);
  }

  void Compact() {
    {
      std::lock_guard lock(mu_);
      floor_ = rv_;
      // Events stay for the watches that are open (the real server's watch cache keeps
      // serving them too); only new watches and old continue tokens see the compaction.
    }
  }

  // Both return once the watches they end are gone (bounded, in case a client stopped
  // reading), so that a test's next WaitForWatches(n) waits for the client's new watches.
  void ExpireWatches() {
    std::unique_lock lock(mu_);
    uint64_t gen = ++expire_generation_;
    cv_.notify_all();
    watch_cv_.wait_for(lock, kEndWait, [&] {
      return watch_expire_gens_.empty() || *watch_expire_gens_.begin() >= gen;
    });
  }

  void DropConnections() {
    uint64_t gen;
    {
      std::lock_guard lock(mu_);
      gen = ++drop_generation_;
    }
    cv_.notify_all();
    std::set<uint64_t> dropped;
    {
      std::lock_guard lock(conns_mu_);
      for (auto& c : conns_) {
        if (c->done) continue;
        ::shutdown(c->fd, SHUT_RDWR);
        dropped.insert(c->id);
      }
    }
    {
      std::unique_lock lock(mu_);
      watch_cv_.wait_for(lock, kEndWait, [&] {
        return watch_drop_gens_.empty() || *watch_drop_gens_.begin() >= gen;
      });
    }
    auto deadline = std::chrono::steady_clock::now() + kEndWait;
    while (std::chrono::steady_clock::now() < deadline) {
      bool any = false;
      {
        std::lock_guard lock(conns_mu_);
        for (const auto& c : conns_) any = any || (dropped.contains(c->id) && !c->done);
      }
      if (!any) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  void SetTokens(std::vector<std::string> tokens) {
    std::lock_guard lock(mu_);
    tokens_ = std::set<std::string>(tokens.begin(), tokens.end());
  }

  void FailNextRequests(int count, int status) {
    std::lock_guard lock(mu_);
    fail_count_ = count;
    fail_status_ = status;
  }

  bool WaitForWatches(size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return watch_cv_.wait_for(lock, timeout, [&] { return watch_expire_gens_.size() >= n; });
  }

  size_t open_watches() const {
    std::lock_guard lock(mu_);
    return watch_expire_gens_.size();
  }

  size_t open_connections() const {
    std::lock_guard lock(conns_mu_);
    size_t n = 0;
    for (const auto& c : conns_) n += c->done ? 0 : 1;
    return n;
  }

  std::atomic<uint64_t> requests_served{0}, lists_served{0}, watches_served{0}, unauthorized{0},
      gone{0};

 private:
  static constexpr std::chrono::seconds kEndWait{5};

  struct Connection {
    uint64_t id = 0;
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  struct Event {
    uint64_t rv;
    std::string storage_key;
    std::string type;  // ADDED, MODIFIED, DELETED
    json object;       // stored form (after the change; for DELETED the last state)
    json previous;     // before the change (null for ADDED)
  };

  // ---- TLS ----

  void MakeTls() {
    TlsMaterial tls = MakeTlsMaterial();
    ca_pem_ = tls.ca_pem;
    ssl_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    ssl_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ssl_->use_certificate_chain(asio::buffer(tls.cert_pem + tls.ca_pem));
    ssl_->use_private_key(asio::buffer(tls.key_pem), ssl::context::pem);
  }

  // ---- connections ----

  void AcceptLoop() {
    while (true) {
      tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_->accept(socket, ec);
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
      if (ec) {
        if (ec == asio::error::invalid_argument || ec == asio::error::bad_descriptor) return;
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      std::lock_guard lock(conns_mu_);
      // Reap finished connections so a long test does not accumulate threads.
      for (auto it = conns_.begin(); it != conns_.end();) {
        if ((*it)->done) {
          (*it)->thread.join();
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
      auto conn = std::make_unique<Connection>();
      conn->fd = socket.native_handle();
      conn->id = ++connection_ids_;
      Connection* raw = conn.get();
      conn->thread = std::thread([this, raw, s = std::move(socket)]() mutable {
        Serve(std::move(s));
        raw->done = true;
      });
      conns_.push_back(std::move(conn));
    }
  }

  void Serve(tcp::socket socket) {
    boost::system::error_code ec;
    if (options_.tls) {
      ssl::stream<tcp::socket> stream(std::move(socket), *ssl_);
      stream.handshake(ssl::stream_base::server, ec);
      if (!ec) ServeHttp(stream);
      // No close_notify: a dropped or finished connection just goes away, which clients must
      // handle anyway.
      stream.next_layer().close(ec);
    } else {
      ServeHttp(socket);
      socket.close(ec);
    }
  }

  template <class Stream>
  void ServeHttp(Stream& stream) {
    beast::flat_buffer buffer;
    while (true) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(stream, buffer, req, ec);
      if (ec) return;
      ++requests_served;
      bool keep = Handle(stream, req);
      if (!keep || !req.keep_alive()) return;
    }
  }

  // Answers one request; false when the connection must end.
  template <class Stream>
  bool Handle(Stream& stream, const http::request<http::string_body>& req) {
    std::string path;
    Query query;
    ParseTarget(std::string_view(req.target().data(), req.target().size()), path, query);
    std::string accept(req[http::field::accept]);
    try {
      Authenticate(req);
      {
        std::lock_guard lock(mu_);
        if (fail_count_ > 0) {
          --fail_count_;
          throw ApiError{fail_status_, ReasonFor(fail_status_),
                         "injected failure (test apiserver FailNextRequests)"};
        }
      }
      if (req.method() == http::verb::get &&
          (path == "/healthz" || path == "/readyz" || path == "/livez")) {
        return SendText(stream, req, http::status::ok, "ok");
      }
      if (req.method() == http::verb::get) {
        if (auto doc = Discovery(path)) return SendJson(stream, req, http::status::ok, *doc);
      }
      Location loc = Locate(path);
      switch (req.method()) {
        case http::verb::get:
          if (!loc.name.empty())
            return SendJson(stream, req, http::status::ok, GetOne(loc, accept));
          if (query.Flag("watch")) return Watch(stream, loc, query, accept);
          return SendJson(stream, req, http::status::ok, List(loc, query, accept));
        case http::verb::post: {
          if (!loc.name.empty()) throw ApiError{405, "MethodNotAllowed", "POST to an object"};
          json body = ParseBody(req);
          std::lock_guard lock(mu_);
          json stored = CreateLocked(loc, std::move(body));
          return SendJson(stream, req, http::status::created, Present(*loc.resource, stored));
        }
        case http::verb::put: {
          if (loc.name.empty()) throw ApiError{405, "MethodNotAllowed", "PUT to a collection"};
          json body = ParseBody(req);
          if (MetaString(body, "name") != loc.name) {
            throw ApiError{400, "BadRequest",
                           "the name of the object (" + MetaString(body, "name") +
                               ") does not match the name on the URL (" + loc.name + ")"};
          }
          std::lock_guard lock(mu_);
          json stored = UpdateLocked(loc, std::move(body), /*check_rv=*/true);
          return SendJson(stream, req, http::status::ok, Present(*loc.resource, stored));
        }
        case http::verb::delete_: {
          if (loc.name.empty()) {
            throw ApiError{405, "MethodNotAllowed", "deleting a collection is not supported"};
          }
          std::lock_guard lock(mu_);
          json last = DeleteLocked(loc);
          return SendJson(stream, req, http::status::ok, Present(*loc.resource, last));
        }
        default:
          throw ApiError{405, "MethodNotAllowed",
                         std::string("the test apiserver does not support ") +
                             std::string(req.method_string())};
      }
    } catch (const ApiError& e) {
      if (e.code == 401) ++unauthorized;
      if (e.code == 410) ++gone;
      json status = StatusBody(e.code, e.reason, e.message);
      if (!e.details.is_null()) status["details"] = e.details;
      return SendJson(stream, req, static_cast<http::status>(e.code), status);
    } catch (const std::exception& e) {
      // An object of a shape the store did not expect (metadata that is not an object, ...):
      // the client hears about it; the server and its other connections carry on.
      return SendJson(stream, req, http::status::bad_request,
                      StatusBody(400, "BadRequest", std::string("cannot handle: ") + e.what()));
    }
  }

  void Authenticate(const http::request<http::string_body>& req) {
    std::string auth(req[http::field::authorization]);
    const std::string prefix = "Bearer ";
    std::lock_guard lock(mu_);
    if (auth.rfind(prefix, 0) == 0 && tokens_.contains(Trim(auth.substr(prefix.size())))) return;
    throw ApiError{401, "Unauthorized", "Unauthorized"};
  }

  static json ParseBody(const http::request<http::string_body>& req) {
    try {
      json body = json::parse(req.body());
      if (!body.is_object()) throw ApiError{400, "BadRequest", "the body is not a JSON object"};
      return body;
    } catch (const json::exception& e) {
      throw ApiError{400, "BadRequest", std::string("the body is not JSON: ") + e.what()};
    }
  }

  template <class Stream>
  bool SendJson(Stream& stream, const http::request<http::string_body>& req, http::status status,
                const json& body) {
    http::response<http::string_body> res(status, req.version());
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-cache, private");
    if (status == http::status::too_many_requests || status == http::status::service_unavailable) {
      res.set(http::field::retry_after, "1");
    }
    res.keep_alive(req.keep_alive());
    res.body() = body.dump() + "\n";
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(stream, res, ec);
    return !ec;
  }

  template <class Stream>
  bool SendText(Stream& stream, const http::request<http::string_body>& req, http::status status,
                const std::string& text) {
    http::response<http::string_body> res(status, req.version());
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.keep_alive(req.keep_alive());
    res.body() = text;
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(stream, res, ec);
    return !ec;
  }

  // ---- discovery ----

  // The legacy (unaggregated) discovery documents. kubectl 1.32 asks for the aggregated
  // apidiscovery.k8s.io/v2 form first and falls back to these when the reply is plain JSON,
  // as it does against servers older than 1.26.
  std::optional<json> Discovery(const std::string& path) {
    std::lock_guard lock(mu_);
    if (path == "/version") {
      return json{{"major", "1"},
                  {"minor", "32"},
                  {"gitVersion", "v1.32.0-xlb-test"},
                  {"gitCommit", "0000000000000000000000000000000000000000"},
                  {"gitTreeState", "clean"},
                  {"buildDate", "2026-01-01T00:00:00Z"},
                  {"goVersion", "go1.23"},
                  {"compiler", "gc"},
                  {"platform", "linux/amd64"}};
    }
    if (path == "/api") {
      return json{{"kind", "APIVersions"},
                  {"versions", {"v1"}},
                  {"serverAddressByClientCIDRs",
                   {{{"clientCIDR", "0.0.0.0/0"},
                     {"serverAddress", "127.0.0.1:" + std::to_string(port_)}}}}};
    }
    if (path == "/apis") {
      json groups = json::array();
      for (const auto& g : Groups()) groups.push_back(GroupDoc(g));
      return json{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
    }
    std::vector<std::string> seg = Split(path.size() > 1 ? path.substr(1) : "", '/');
    if (seg.size() == 2 && seg[0] == "apis") {
      for (const auto& g : Groups()) {
        if (g == seg[1]) return GroupDoc(g);
      }
    }
    std::string group, version;
    if (seg.size() == 2 && seg[0] == "api") {
      version = seg[1];
    } else if (seg.size() == 3 && seg[0] == "apis") {
      group = seg[1];
      version = seg[2];
    } else {
      return std::nullopt;
    }
    json list = json::array();
    for (const auto& r : resources_) {
      if (r->group != group || r->version != version) continue;
      json entry = {{"name", r->resource},
                    {"singularName", r->singular},
                    {"namespaced", r->namespaced},
                    {"kind", r->kind},
                    {"verbs", {"create", "delete", "get", "list", "update", "watch"}}};
      if (!r->short_names.empty()) entry["shortNames"] = r->short_names;
      list.push_back(entry);
    }
    if (list.empty()) return std::nullopt;
    return json{{"kind", "APIResourceList"},
                {"apiVersion", "v1"},
                {"groupVersion", group.empty() ? version : group + "/" + version},
                {"resources", list}};
  }

  std::vector<std::string> Groups() const {
    std::vector<std::string> out;
    for (const auto& r : resources_) {
      if (!r->group.empty() && std::find(out.begin(), out.end(), r->group) == out.end()) {
        out.push_back(r->group);
      }
    }
    return out;
  }

  json GroupDoc(const std::string& group) const {
    json versions = json::array();
    std::vector<std::string> seen;
    for (const auto& r : resources_) {
      if (r->group != group || std::find(seen.begin(), seen.end(), r->version) != seen.end()) {
        continue;
      }
      seen.push_back(r->version);
      versions.push_back({{"groupVersion", group + "/" + r->version}, {"version", r->version}});
    }
    // The preferred version is the newest registered (v1beta1 over v1alpha1 for MCS), as the
    // real server orders by stability.
    json preferred = versions.back();
    return {{"kind", "APIGroup"},
            {"apiVersion", "v1"},
            {"name", group},
            {"versions", versions},
            {"preferredVersion", preferred}};
  }

  // ---- paths ----

  // A collection path given by the test (not by a client): invalid ones are test bugs.
  Location CollectionFor(const std::string& path) const {
    try {
      std::lock_guard lock(mu_);
      Location loc = LocateLocked(path);
      if (!loc.name.empty()) throw ApiError{400, "BadRequest", "not a collection path"};
      return loc;
    } catch (const ApiError& e) {
      throw std::invalid_argument("test apiserver: " + path + ": " + e.message);
    }
  }

  Location Locate(const std::string& path) {
    std::lock_guard lock(mu_);
    return LocateLocked(path);
  }

  Location LocateLocked(const std::string& path) const {
    std::vector<std::string> seg = Split(path.size() > 1 ? path.substr(1) : "", '/');
    if (!seg.empty() && seg.back().empty()) seg.pop_back();
    std::string group, version;
    size_t i;
    if (seg.size() >= 2 && seg[0] == "api") {
      version = seg[1];
      i = 2;
    } else if (seg.size() >= 3 && seg[0] == "apis") {
      group = seg[1];
      version = seg[2];
      i = 3;
    } else {
      throw ApiError{404, "NotFound", "the server could not find the requested resource"};
    }
    auto find = [&](const std::string& resource) -> const ApiResource* {
      for (const auto& r : resources_) {
        if (r->group == group && r->version == version && r->resource == resource) return r.get();
      }
      return nullptr;
    };
    Location loc;
    std::vector<std::string> rest(seg.begin() + long(i), seg.end());
    if (rest.size() >= 3 && rest[0] == "namespaces") {
      loc.resource = find(rest[2]);
      if (loc.resource != nullptr && !loc.resource->namespaced) loc.resource = nullptr;
      loc.ns = rest[1];
      if (rest.size() == 4) loc.name = rest[3];
      if (rest.size() > 4) loc.resource = nullptr;
    } else if (!rest.empty() && rest.size() <= 2) {
      loc.resource = find(rest[0]);
      if (rest.size() == 2) {
        loc.name = rest[1];
        if (loc.resource != nullptr && loc.resource->namespaced) loc.resource = nullptr;
      }
    }
    if (loc.resource == nullptr) {
      throw ApiError{404, "NotFound", "the server could not find the requested resource"};
    }
    return loc;
  }

  // ---- store ----

  // The object as a client sees it from `resource`'s version.
  static json Present(const ApiResource& resource, json obj) {
    obj["apiVersion"] = GroupVersion(resource);
    obj["kind"] = resource.kind;
    return obj;
  }

  std::string NamespaceFor(const Location& loc, const json& obj) const {
    if (!loc.resource->namespaced) return "";
    std::string from_body = MetaString(obj, "namespace");
    if (!loc.ns.empty()) {
      if (!from_body.empty() && from_body != loc.ns) {
        throw ApiError{400, "BadRequest",
                       "the namespace of the provided object (" + from_body +
                           ") does not match the namespace sent on the request (" + loc.ns + ")"};
      }
      return loc.ns;
    }
    return from_body.empty() ? "default" : from_body;
  }

  void Record(const ApiResource& r, const std::string& type, const json& object, json previous) {
    history_.push_back(Event{rv_, StorageKey(r), type, object, std::move(previous)});
    cv_.notify_all();
  }

  json CreateLocked(const Location& loc, json obj) {
    if (!obj.is_object()) throw ApiError{400, "BadRequest", "the object is not a JSON object"};
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
    json& meta = obj["metadata"];
    std::string name = MetaString(obj, "name");
    if (name.empty()) {
      std::string prefix = MetaString(obj, "generateName");
      if (prefix.empty()) {
        throw ApiError{422, "Invalid", loc.resource->kind + ": metadata.name: Required value"};
      }
      name = prefix + RandomSuffix(5);
      meta["name"] = name;
    }
    std::string ns = NamespaceFor(loc, obj);
    auto& objects = store_[StorageKey(*loc.resource)];
    std::string key = ObjectKey(ns, name);
    if (!objects.contains(key)) EnsureNamespaceLocked(ns);
    if (objects.contains(key)) {
      throw ObjectError(409, "AlreadyExists", *loc.resource, name, "", " already exists");
    }
    if (ns.empty())
      meta.erase("namespace");
    else
      meta["namespace"] = ns;
    meta["uid"] = NewUid();
    meta["creationTimestamp"] = NowRfc3339();
    meta["resourceVersion"] = std::to_string(++rv_);
    if (!meta.contains("generation")) meta["generation"] = 1;
    obj = Present(*loc.resource, std::move(obj));
    objects[key] = obj;
    Record(*loc.resource, "ADDED", obj, nullptr);
    return obj;
  }

  void EnsureNamespaceLocked(const std::string& ns) {
    if (!options_.auto_namespaces || ns.empty()) return;
    const ApiResource* namespaces = nullptr;
    for (const auto& r : resources_) {
      if (r->group.empty() && r->resource == "namespaces") namespaces = r.get();
    }
    if (namespaces == nullptr || store_[StorageKey(*namespaces)].contains(ObjectKey("", ns))) {
      return;
    }
    CreateLocked(Location{namespaces, "", ""}, {{"metadata", {{"name", ns}}},
                                                {"spec", {{"finalizers", {"kubernetes"}}}},
                                                {"status", {{"phase", "Active"}}}});
  }

  json UpdateLocked(const Location& loc, json obj, bool check_rv) {
    if (!obj.is_object()) throw ApiError{400, "BadRequest", "the object is not a JSON object"};
    std::string name = loc.name.empty() ? MetaString(obj, "name") : loc.name;
    if (name.empty()) throw ApiError{422, "Invalid", "metadata.name: Required value"};
    std::string ns = NamespaceFor(loc, obj);
    auto& objects = store_[StorageKey(*loc.resource)];
    auto it = objects.find(ObjectKey(ns, name));
    if (it == objects.end()) {
      throw ObjectError(404, "NotFound", *loc.resource, name, "", " not found");
    }
    std::string sent_rv = MetaString(obj, "resourceVersion");
    if (check_rv && !sent_rv.empty() && sent_rv != MetaString(it->second, "resourceVersion")) {
      throw ObjectError(409, "Conflict", *loc.resource, name, "Operation cannot be fulfilled on ",
                        ": the object has been modified; please apply your changes to the latest "
                        "version and try again");
    }
    json previous = it->second;
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
    json& meta = obj["metadata"];
    meta["name"] = name;
    if (ns.empty())
      meta.erase("namespace");
    else
      meta["namespace"] = ns;
    meta["uid"] = previous["metadata"]["uid"];
    meta["creationTimestamp"] = previous["metadata"]["creationTimestamp"];
    meta["resourceVersion"] = std::to_string(++rv_);
    obj = Present(*loc.resource, std::move(obj));
    it->second = obj;
    Record(*loc.resource, "MODIFIED", obj, std::move(previous));
    return obj;
  }

  json DeleteLocked(const Location& loc) {
    std::string ns = loc.resource->namespaced ? (loc.ns.empty() ? "default" : loc.ns) : "";
    auto& objects = store_[StorageKey(*loc.resource)];
    auto it = objects.find(ObjectKey(ns, loc.name));
    if (it == objects.end()) {
      throw ObjectError(404, "NotFound", *loc.resource, loc.name, "", " not found");
    }
    json previous = it->second;
    objects.erase(it);
    // The real server's DELETED event carries the object at the deletion's revision.
    json last = previous;
    last["metadata"]["resourceVersion"] = std::to_string(++rv_);
    Record(*loc.resource, "DELETED", last, previous);
    return last;
  }

  // The objects of `loc`'s collection as they were at revision `at` (<= rv_): the current
  // state with the history after `at` undone.
  std::map<std::string, json> SnapshotLocked(const Location& loc, uint64_t at) const {
    std::string skey = StorageKey(*loc.resource);
    std::map<std::string, json> objects;
    if (auto it = store_.find(skey); it != store_.end()) objects = it->second;
    for (auto it = history_.rbegin(); it != history_.rend() && it->rv > at; ++it) {
      if (it->storage_key != skey) continue;
      std::string key =
          ObjectKey(MetaString(it->object, "namespace"), MetaString(it->object, "name"));
      if (it->type == "ADDED")
        objects.erase(key);
      else
        objects[key] = it->previous;
    }
    return objects;
  }

  // ---- get and list ----

  static bool WantsTable(const std::string& accept) {
    return accept.find("as=Table") != std::string::npos;
  }

  // kubectl's human output: the server renders rows, kubectl prints them. NAME and AGE for
  // every kind (the real server has per-kind columns; kubectl prints whatever comes).
  static json Table(const std::vector<json>& objects, const std::string& rv, const Query& query) {
    json rows = json::array();
    bool full = query.Get("includeObject") == "Object";
    for (const auto& o : objects) {
      json row_object;
      if (full) {
        row_object = o;
      } else {
        row_object = {{"kind", "PartialObjectMetadata"},
                      {"apiVersion", "meta.k8s.io/v1"},
                      {"metadata", o.value("metadata", json::object())}};
      }
      rows.push_back({{"cells", {MetaString(o, "name"), Age(o)}}, {"object", row_object}});
    }
    return {{"kind", "Table"},
            {"apiVersion", "meta.k8s.io/v1"},
            {"metadata", {{"resourceVersion", rv}}},
            {"columnDefinitions",
             {{{"name", "Name"},
               {"type", "string"},
               {"format", "name"},
               {"description", "Name must be unique within a namespace."},
               {"priority", 0}},
              {{"name", "Age"},
               {"type", "string"},
               {"format", ""},
               {"description",
                "CreationTimestamp is a timestamp representing the server time "
                "when this object was created."},
               {"priority", 0}}}},
            {"rows", rows}};
  }

  json GetOne(const Location& loc, const std::string& accept) {
    std::lock_guard lock(mu_);
    std::string ns = loc.resource->namespaced ? loc.ns : "";
    auto& objects = store_[StorageKey(*loc.resource)];
    auto it = objects.find(ObjectKey(ns, loc.name));
    if (it == objects.end()) {
      throw ObjectError(404, "NotFound", *loc.resource, loc.name, "", " not found");
    }
    json obj = Present(*loc.resource, it->second);
    if (WantsTable(accept)) return Table({obj}, MetaString(obj, "resourceVersion"), Query{});
    return obj;
  }

  bool Matches(const Location& loc, const std::vector<LabelRequirement>& labels,
               const std::vector<FieldRequirement>& fields, const json& obj) const {
    if (loc.resource->namespaced && !loc.ns.empty() && MetaString(obj, "namespace") != loc.ns) {
      return false;
    }
    return LabelsMatch(labels, obj) && FieldsMatch(fields, obj);
  }

  // Continue tokens carry the snapshot's revision and the last key served, like the real
  // server's (base64 of {"v":"meta.k8s.io/v1","rv":N,"start":KEY}).
  json List(const Location& loc, const Query& query, const std::string& accept) {
    auto [labels, fields] = ParseSelectors(query);
    long limit = 0;
    if (query.Has("limit") && !query.Get("limit").empty()) {
      // Like the real server: a limit of 0 or less means none.
      try {
        size_t used = 0;
        limit = std::max(0L, std::stol(query.Get("limit"), &used));
        if (used != query.Get("limit").size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        throw ApiError{400, "BadRequest", "invalid limit: \"" + query.Get("limit") + "\""};
      }
    }
    std::lock_guard lock(mu_);
    uint64_t snapshot = rv_;
    std::string start_after;
    if (query.Has("continue") && !query.Get("continue").empty()) {
      json token;
      auto raw = Unbase64(query.Get("continue"));
      try {
        if (raw) token = json::parse(*raw);
      } catch (const json::exception&) {
      }
      if (!token.is_object() || !token.contains("rv") || !token["rv"].is_number_unsigned() ||
          !token.contains("start") || !token["start"].is_string()) {
        throw ApiError{400, "BadRequest",
                       "continue key is not valid: \"" + query.Get("continue") + "\""};
      }
      snapshot = token["rv"].get<uint64_t>();
      start_after = token["start"].get<std::string>();
      if (snapshot < floor_) {
        throw ApiError{410, "Expired",
                       "The provided continue parameter is too old to display a consistent list "
                       "result. You can start a new list without the continue parameter."};
      }
    } else if (query.Get("resourceVersionMatch") == "Exact") {
      snapshot = ParseRv(query.Get("resourceVersion"), "resourceVersion");
      if (snapshot < floor_) {
        throw ApiError{410, "Expired",
                       "too old resource version: " + std::to_string(snapshot) + " (" +
                           std::to_string(floor_) + ")"};
      }
      if (snapshot > rv_) {
        throw ApiError{504, "Timeout",
                       "Too large resource version: " + std::to_string(snapshot) +
                           ", current: " + std::to_string(rv_)};
      }
    }
    std::map<std::string, json> objects =
        snapshot == rv_ ? store_[StorageKey(*loc.resource)] : SnapshotLocked(loc, snapshot);
    std::vector<json> items;
    std::string next_start;
    long remaining = 0;
    for (auto it = start_after.empty() ? objects.begin() : objects.upper_bound(start_after);
         it != objects.end(); ++it) {
      if (!Matches(loc, labels, fields, it->second)) continue;
      if (limit > 0 && long(items.size()) == limit) {
        ++remaining;
        continue;
      }
      json item = Present(*loc.resource, it->second);
      if (!loc.resource->custom) {
        // Built-in types: list items carry no kind/apiVersion on the wire.
        item.erase("kind");
        item.erase("apiVersion");
      }
      items.push_back(std::move(item));
      next_start = it->first;
    }
    ++lists_served;
    std::string rv = std::to_string(snapshot);
    if (WantsTable(accept)) {
      for (auto& i : items) i = Present(*loc.resource, i);
      json table = Table(items, rv, query);
      if (remaining > 0) {
        table["metadata"]["continue"] =
            Base64(json{{"v", "meta.k8s.io/v1"}, {"rv", snapshot}, {"start", next_start}}.dump());
        table["metadata"]["remainingItemCount"] = remaining;
      }
      return table;
    }
    json meta = {{"resourceVersion", rv}};
    if (remaining > 0) {
      meta["continue"] =
          Base64(json{{"v", "meta.k8s.io/v1"}, {"rv", snapshot}, {"start", next_start}}.dump());
      // The real server leaves the count out when a label or field selector filters.
      if (labels.empty() && fields.empty()) meta["remainingItemCount"] = remaining;
    }
    return {{"kind", loc.resource->kind + "List"},
            {"apiVersion", GroupVersion(*loc.resource)},
            {"metadata", meta},
            {"items", items}};
  }

  // ---- watch ----

  // Writes a watch stream's chunks. HTTP/1.1 chunked framing by hand, so the tests can choose
  // where chunk boundaries fall.
  template <class Stream>
  class ChunkWriter {
   public:
    ChunkWriter(Stream& stream, bool random, uint32_t seed)
        : stream_(stream), random_(random), rng_(seed) {}

    bool Head() {
      static const std::string head =
          "HTTP/1.1 200 OK\r\nAudit-Id: xlb-test\r\nCache-Control: no-cache, private\r\n"
          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
      return Raw(head);
    }

    // Writes a batch of events (one JSON document + "\n" each).
    bool Events(const std::string& batch) {
      if (batch.empty()) return true;
      if (!random_) return Chunk(batch);
      size_t pos = 0;
      while (pos < batch.size()) {
        std::uniform_int_distribution<size_t> size(1, std::max<size_t>(2, batch.size() / 2));
        size_t n = std::min(size(rng_), batch.size() - pos);
        if (!Chunk(batch.substr(pos, n))) return false;
        pos += n;
      }
      return true;
    }

    bool End() { return Raw("0\r\n\r\n"); }

   private:
    bool Chunk(const std::string& data) {
      char size[32];
      std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
      return Raw(std::string(size) + data + "\r\n");
    }
    bool Raw(const std::string& bytes) {
      boost::system::error_code ec;
      asio::write(stream_, asio::buffer(bytes), ec);
      return !ec;
    }

    Stream& stream_;
    bool random_;
    std::mt19937 rng_;
  };

  static int NativeFd(tcp::socket& s) { return s.native_handle(); }
  static int NativeFd(ssl::stream<tcp::socket>& s) { return s.next_layer().native_handle(); }

  static bool PeerClosed(int fd) {
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  json WatchObject(const ApiResource& r, json obj, bool table, const Query& query) const {
    obj = Present(r, std::move(obj));
    if (table) return Table({obj}, MetaString(obj, "resourceVersion"), query);
    return obj;
  }

  template <class Stream>
  bool Watch(Stream& stream, const Location& loc, const Query& query, const std::string& accept) {
    if (query.Flag("sendInitialEvents")) {
      throw ApiError{422, "Invalid",
                     "sendInitialEvents (watch-list) is not supported by the test apiserver"};
    }
    auto [labels, fields] = ParseSelectors(query);
    bool bookmarks = query.Flag("allowWatchBookmarks");
    bool table = WantsTable(accept);
    std::optional<std::chrono::steady_clock::time_point> deadline;
    auto started = std::chrono::steady_clock::now();
    if (query.Has("timeoutSeconds")) {
      deadline =
          started + std::chrono::seconds(ParseRv(query.Get("timeoutSeconds"), "timeoutSeconds"));
    }
    if (options_.watch_timeout_ms > 0) {
      auto server_end = started + std::chrono::milliseconds(options_.watch_timeout_ms);
      deadline = deadline ? std::min(*deadline, server_end) : server_end;
    }
    std::string rv_param = query.Get("resourceVersion");
    uint64_t from = rv_param.empty() || rv_param == "0" ? 0 : ParseRv(rv_param, "resourceVersion");

    ChunkWriter<Stream> out(stream, options_.random_chunks,
                            options_.random_chunks_seed + uint32_t(watches_served));
    std::string batch;
    uint64_t position;
    uint64_t expire_gen, drop_gen;
    bool too_old = false;
    std::string too_old_message;
    {
      std::lock_guard lock(mu_);
      expire_gen = expire_generation_;
      drop_gen = drop_generation_;
      if (from != 0 && from < floor_) {
        // The real server answers 200 and sends the 410 as the stream's first event.
        too_old = true;
        too_old_message = "too old resource version: " + std::to_string(from) + " (" +
                          std::to_string(floor_) + ")";
        position = rv_;
      } else if (from == 0) {
        // No resourceVersion (or 0): the current state as synthetic ADDED events, then changes.
        for (const auto& [key, obj] : store_[StorageKey(*loc.resource)]) {
          if (!Matches(loc, labels, fields, obj)) continue;
          batch += EventLine("ADDED", WatchObject(*loc.resource, obj, table, query));
        }
        position = rv_;
      } else {
        position = from;
      }
      watch_expire_gens_.insert(expire_gen);
      watch_drop_gens_.insert(drop_gen);
    }
    ++watches_served;
    watch_cv_.notify_all();
    struct Closer {
      Impl* self;
      uint64_t expire_gen, drop_gen;
      ~Closer() {
        {
          std::lock_guard lock(self->mu_);
          self->watch_expire_gens_.erase(self->watch_expire_gens_.find(expire_gen));
          self->watch_drop_gens_.erase(self->watch_drop_gens_.find(drop_gen));
        }
        self->watch_cv_.notify_all();
      }
    } closer{this, expire_gen, drop_gen};

    if (!out.Head()) return false;
    if (too_old) {
      ++gone;
      out.Events(EventLine("ERROR", StatusBody(410, "Expired", too_old_message)));
      return out.End();
    }
    if (!out.Events(batch)) return false;

    const std::string skey = StorageKey(*loc.resource);
    const int fd = NativeFd(stream);
    auto interval = std::chrono::milliseconds(std::max(1, options_.bookmark_interval_ms));
    auto next_bookmark = std::chrono::steady_clock::now() + interval;
    while (true) {
      batch.clear();
      bool expired = false, dropped = false, timed_out = false, bookmark_due = false;
      uint64_t bookmark_rv = 0;
      {
        std::unique_lock lock(mu_);
        auto wake = std::min(next_bookmark,
                             std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
        if (deadline) wake = std::min(wake, *deadline);
        cv_.wait_until(lock, wake, [&] {
          return stopping_ || expire_generation_ != expire_gen || drop_generation_ != drop_gen ||
                 rv_ > position;
        });
        if (stopping_ || drop_generation_ != drop_gen) {
          dropped = true;
        } else {
          // History is in revision order; walk back to the first event we have not sent.
          auto it = std::upper_bound(history_.begin(), history_.end(), position,
                                     [](uint64_t p, const Event& e) { return p < e.rv; });
          for (; it != history_.end(); ++it) {
            if (it->storage_key != skey) continue;
            bool now = Matches(loc, labels, fields, it->object);
            bool before = !it->previous.is_null() && Matches(loc, labels, fields, it->previous);
            std::string type = it->type;
            // An object that moves into or out of a selector is ADDED or DELETED for this
            // watch, as the real server's watch cache reports it.
            if (type == "MODIFIED" && now && !before) type = "ADDED";
            if (type == "MODIFIED" && !now && before) type = "DELETED";
            if (!now && !(type == "DELETED" && before)) continue;
            // Leaving the selector: the last state that matched, at this event's revision.
            json obj = now ? it->object : it->previous;
            obj["metadata"]["resourceVersion"] = std::to_string(it->rv);
            batch += EventLine(type, WatchObject(*loc.resource, obj, table, query));
          }
          position = std::max(position, rv_);
          expired = expire_generation_ != expire_gen;
          auto now = std::chrono::steady_clock::now();
          timed_out = deadline && now >= *deadline;
          if (bookmarks && now >= next_bookmark) {
            bookmark_due = true;
            bookmark_rv = position;
            next_bookmark = now + interval;
          }
        }
      }
      if (dropped) return false;
      if (!out.Events(batch)) return false;
      if (expired) {
        ++gone;
        out.Events(EventLine("ERROR", StatusBody(410, "Expired",
                                                 "The resourceVersion for the provided watch is "
                                                 "too old.")));
        return out.End();
      }
      if (timed_out) return out.End();
      if (bookmark_due) {
        json object = {
            {"kind", table ? "Table" : loc.resource->kind},
            {"apiVersion", table ? "meta.k8s.io/v1" : GroupVersion(*loc.resource)},
            {"metadata",
             {{"resourceVersion", std::to_string(bookmark_rv)}, {"creationTimestamp", nullptr}}}};
        if (!out.Events(EventLine("BOOKMARK", object))) return false;
      }
      if (PeerClosed(fd)) return false;
    }
  }

  ApiServerOptions options_;

  mutable std::mutex mu_;                     // everything below up to conns_mu_
  mutable std::condition_variable cv_;        // store changed, or watches must end
  mutable std::condition_variable watch_cv_;  // a watch opened
  std::vector<std::unique_ptr<ApiResource>> resources_;
  std::map<std::string, std::map<std::string, json>> store_;  // storage key → ns/name → object
  std::deque<Event> history_;
  uint64_t rv_;
  uint64_t floor_;  // oldest revision a new watch or a continue token may start from
  uint64_t expire_generation_ = 0;
  uint64_t drop_generation_ = 0;
  bool stopping_ = false;
  std::set<std::string> tokens_;
  int fail_count_ = 0;
  int fail_status_ = 500;
  // One entry per open watch: the expire/drop generation it started in.
  std::multiset<uint64_t> watch_expire_gens_;
  std::multiset<uint64_t> watch_drop_gens_;

  mutable std::mutex conns_mu_;
  std::list<std::unique_ptr<Connection>> conns_;
  uint64_t connection_ids_ = 0;

  std::mutex run_mu_;  // Start/Stop/Restart
  bool running_ = false;
  asio::io_context ioc_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::thread accept_thread_;
  uint16_t port_ = 0;
  std::unique_ptr<ssl::context> ssl_;
  std::string ca_pem_;
};

TestApiServer::TestApiServer(ApiServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
TestApiServer::~TestApiServer() = default;
void TestApiServer::Start() {
  impl_->Start();
}
void TestApiServer::Stop() {
  impl_->Stop();
}
uint16_t TestApiServer::port() const {
  return impl_->port();
}
std::string TestApiServer::url() const {
  return impl_->url();
}
std::string TestApiServer::ca_pem() const {
  return impl_->ca_pem();
}
void TestApiServer::WriteKubeconfig(const std::string& path, const std::string& token) const {
  impl_->WriteKubeconfig(path, token);
}
void TestApiServer::AddResource(const ApiResource& resource) {
  impl_->AddResource(resource);
}
nlohmann::json TestApiServer::Create(const std::string& path, nlohmann::json obj) {
  return impl_->Create(path, std::move(obj));
}
nlohmann::json TestApiServer::Update(const std::string& path, nlohmann::json obj) {
  return impl_->Update(path, std::move(obj));
}
void TestApiServer::Delete(const std::string& path, const std::string& name) {
  impl_->Delete(path, name);
}
std::optional<nlohmann::json> TestApiServer::Get(const std::string& path,
                                                 const std::string& name) const {
  return impl_->Get(path, name);
}
void TestApiServer::LoadFile(const std::string& path) {
  impl_->LoadFile(path);
}
std::string TestApiServer::resource_version() const {
  return impl_->resource_version();
}
void TestApiServer::Compact() {
  impl_->Compact();
}
void TestApiServer::ExpireWatches() {
  impl_->ExpireWatches();
}
void TestApiServer::DropConnections() {
  impl_->DropConnections();
}
void TestApiServer::Restart(bool new_history) {
  impl_->Restart(new_history);
}
void TestApiServer::SetTokens(std::vector<std::string> tokens) {
  impl_->SetTokens(std::move(tokens));
}
void TestApiServer::FailNextRequests(int count, int http_status) {
  impl_->FailNextRequests(count, http_status);
}
bool TestApiServer::WaitForWatches(size_t n, std::chrono::milliseconds timeout) const {
  return impl_->WaitForWatches(n, timeout);
}
uint64_t TestApiServer::requests_served() const {
  return impl_->requests_served;
}
uint64_t TestApiServer::lists_served() const {
  return impl_->lists_served;
}
uint64_t TestApiServer::watches_served() const {
  return impl_->watches_served;
}
uint64_t TestApiServer::unauthorized() const {
  return impl_->unauthorized;
}
uint64_t TestApiServer::gone() const {
  return impl_->gone;
}
size_t TestApiServer::open_watches() const {
  return impl_->open_watches();
}
size_t TestApiServer::open_connections() const {
  return impl_->open_connections();
}

}  // namespace xlb::testing
