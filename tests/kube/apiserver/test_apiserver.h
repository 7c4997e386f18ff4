// A Kubernetes API server for tests: the real wire protocol (HTTPS, bearer tokens, JSON lists
// with limit/continue, chunked watch streams with bookmarks and 410 Gone, discovery for
// kubectl) over an in-memory store, in-process on 127.0.0.1:0.
//
// It exists so the watch client and the agent's Kubernetes source are tested against what a
// real API server sends (including its failure modes: expired watches, compacted history,
// dropped connections, an etcd restore that moves resourceVersions, token rotation) without a
// cluster. kubectl is the referee: tests/kube/apiserver/apiserver_test.cc runs the real kubectl
// against it. What is and is not covered: tests/kube/apiserver/README.md.
//
// Thread safety: every public method may be called from any thread while the server runs.
#ifndef XLB_TESTS_KUBE_APISERVER_TEST_APISERVER_H
#define XLB_TESTS_KUBE_APISERVER_TEST_APISERVER_H

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace xlb::testing {

struct ApiServerOptions {
  // Bearer tokens accepted; anything else gets 401 with a Status body.
  std::vector<std::string> tokens{"test-token"};
  // How often a watch with allowWatchBookmarks=true gets a BOOKMARK event.
  int bookmark_interval_ms = 1000;
  // false: plain HTTP (url() says http://), for tests that want to look at the bytes.
  bool tls = true;
  // Watch streams are written in chunks of random size (1 byte up to a few events), so an
  // event is split across chunks and several events share one, to exercise client parsers.
  // Deterministic for a given seed.
  bool random_chunks = false;
  uint32_t random_chunks_seed = 1;
  // The real server ends every watch cleanly after a random 30-60 minutes even when the client
  // gave no timeoutSeconds; > 0 does that here after this many ms (the smaller of the two
  // wins), so a client's re-watch after a clean end can be tested. 0: watches stay open.
  int watch_timeout_ms = 0;
  // First resourceVersion handed out is this + 1.
  uint64_t initial_resource_version = 1000;
  // 0 = any free port (the normal case); otherwise this port.
  uint16_t port = 0;
  // Creating a namespaced object in a namespace that does not exist creates the Namespace
  // first (one resourceVersion of its own), as if someone had run `kubectl create namespace`:
  // kubectl looks the namespace up to word its errors, and a real cluster has it.
  bool auto_namespaces = true;
};

// A resource the server serves. The built-in set (see DefaultResources()) covers services,
// endpoints, nodes, namespaces, endpointslices, serviceimports (v1alpha1 and v1beta1: one
// storage, like a CRD with two served versions) and clusterproperties.
struct ApiResource {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural, lower case: "endpointslices"
  std::string kind;      // "EndpointSlice"
  bool namespaced = true;
  std::vector<std::string> short_names;  // {"svc"}
  std::string singular;                  // "endpointslice"; empty = lower-cased kind
  // A custom resource: list items carry kind/apiVersion (for built-in types the real server
  // leaves them out of list items).
  bool custom = false;
};
std::vector<ApiResource> DefaultResources();

class TestApiServer {
 public:
  explicit TestApiServer(ApiServerOptions options = {});
  ~TestApiServer();  // Stop()s
  TestApiServer(const TestApiServer&) = delete;
  TestApiServer& operator=(const TestApiServer&) = delete;

  // Listens on 127.0.0.1 and serves from its own threads. Throws std::runtime_error when it
  // cannot (port taken, TLS setup failed).
  void Start();
  // Closes the listener and every connection. The store is kept (Start() again serves it).
  void Stop();

  uint16_t port() const;
  std::string url() const;     // "https://127.0.0.1:PORT" (http:// without TLS)
  std::string ca_pem() const;  // the CA the server cert chains to (SAN IP:127.0.0.1, DNS:localhost)
  // A kubeconfig (current-context set) for url() with certificate-authority-data and `token`.
  void WriteKubeconfig(const std::string& path, const std::string& token) const;

  // Adds another resource type (say a CRD a test needs). Call before Start().
  void AddResource(const ApiResource& resource);

  // The store. collection_path is the path of a collection the server serves, e.g.
  // "/apis/discovery.k8s.io/v1/namespaces/ns1/endpointslices" or "/api/v1/nodes"; for a
  // namespaced resource the namespace comes from the path, or from metadata.namespace when
  // the path is the all-namespaces one. Create sets metadata.resourceVersion, uid,
  // creationTimestamp, namespace (and kind/apiVersion) and returns the stored object; watches
  // see ADDED. Update replaces the whole object (MODIFIED); Delete sends DELETED. Each is one
  // resourceVersion. They throw std::invalid_argument for an unknown path, a missing name, a
  // Create of an existing object, or an Update/Delete of a missing one.
  nlohmann::json Create(const std::string& collection_path, nlohmann::json obj);
  nlohmann::json Update(const std::string& collection_path, nlohmann::json obj);
  void Delete(const std::string& collection_path, const std::string& name);
  std::optional<nlohmann::json> Get(const std::string& collection_path,
                                    const std::string& name) const;
  // Loads a JSON file: an array of objects (or a v1 List). Each goes to the collection its
  // apiVersion/kind/metadata.namespace name. Throws std::invalid_argument naming the file and
  // the item when something is wrong; nothing is stored then.
  void LoadFile(const std::string& path);

  // The current (latest) resourceVersion, as the server writes it.
  std::string resource_version() const;

  // History before now is gone: watches from an older resourceVersion and continue tokens of
  // older snapshots get 410 Gone (reason Expired).
  void Compact();
  // Every open watch gets an ERROR event (a Status, code 410, reason Expired) and ends cleanly.
  // Returns once those watches are closed (open_watches() no longer counts them; at most 5 s
  // when a client does not read), so a following WaitForWatches(n) waits for new watches.
  void ExpireWatches();
  // Every open connection (watches and idle keep-alive ones) is closed abruptly: TCP close,
  // no TLS close_notify, no chunk terminator. Returns once they are gone (at most 5 s).
  void DropConnections();
  // Stop() and Start() on the same port. new_history: resourceVersions continue from an
  // unrelated, higher base (an etcd restore) and the old history is gone (watches from old
  // resourceVersions get 410); the objects are kept (with new resourceVersions).
  void Restart(bool new_history);
  // Token rotation: only these tokens are accepted from now on (others: 401 Status).
  void SetTokens(std::vector<std::string> tokens);
  // The next `count` requests (of any kind, after authentication) are answered with this HTTP
  // status and a Status body with the real server's reason for it (e.g. 410 Expired, 500
  // InternalError, 429 TooManyRequests and 503 ServiceUnavailable with Retry-After: 1).
  void FailNextRequests(int count, int http_status);

  // Blocks until at least `n` watches are open (or the timeout passes); returns whether they
  // are. Lets a test create an object only once the client's watch is established.
  bool WaitForWatches(size_t n, std::chrono::milliseconds timeout) const;

  // Counters since construction.
  uint64_t requests_served() const;  // every HTTP request answered (any status)
  uint64_t lists_served() const;     // successful list responses (each page counts)
  uint64_t watches_served() const;   // watches started (200 sent)
  uint64_t unauthorized() const;     // 401s
  uint64_t gone() const;             // 410s: list responses and watch ERROR events
  size_t open_watches() const;
  size_t open_connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xlb::testing

#endif  // XLB_TESTS_KUBE_APISERVER_TEST_APISERVER_H
