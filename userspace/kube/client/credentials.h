// What the client shows the API server to prove who it is, and where that comes from: a fixed
// token or client certificate, a token file that the kubelet rotates under our feet (projected
// service account tokens live an hour), or an exec credential plugin (aws, gke-gcloud-auth,
// kubelogin, ...) whose answer is good until its expirationTimestamp.
//
// Every source caches, so Current() is cheap enough to call before every request, and every
// source forgets its cache on Invalidate(), which the client calls when the server answers 401:
// a rotated token is picked up at once instead of at the next check.
//
// Thread safety: Current() and Invalidate() may be called from any thread.
#ifndef XLB_USERSPACE_KUBE_CLIENT_CREDENTIALS_H
#define XLB_USERSPACE_KUBE_CLIENT_CREDENTIALS_H

#include <sys/stat.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "userspace/kube/client/kube_error.h"
#include "util/rfc3339.h"

namespace xlb::kube {

struct Credential {
  std::string token;            // "Authorization: Bearer <token>" when not empty
  std::string client_cert_pem;  // a client certificate (and its key) for TLS, when not empty
  std::string client_key_pem;
};

class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  virtual KubeResult<Credential> Current() = 0;
  // The server refused what Current() returned: the next Current() fetches afresh.
  virtual void Invalidate() = 0;
};

// A token or client certificate written into the configuration: nothing to refresh.
class StaticCredential : public CredentialSource {
 public:
  explicit StaticCredential(Credential credential) : credential_(std::move(credential)) {}
  KubeResult<Credential> Current() override { return credential_; }
  void Invalidate() override {}

 private:
  Credential credential_;
};

// A bearer token read from a file, re-read when the file changed (mtime, size or inode; the
// kubelet replaces the projected token by swapping a symlink), checked at most every
// `recheck` (client-go caches a minute; a shorter wait costs one stat()), and always after
// Invalidate(). A client certificate may ride along (kubeconfig users with both).
class TokenFileCredential : public CredentialSource {
 public:
  // `what` names the file in errors: "in-cluster token /var/run/.../token".
  TokenFileCredential(std::string path, std::string what,
                      std::chrono::milliseconds recheck = std::chrono::seconds(5),
                      Credential extra = {});
  KubeResult<Credential> Current() override;
  void Invalidate() override;

 private:
  std::mutex mu_;
  std::string path_;
  std::string what_;
  std::chrono::milliseconds recheck_;
  Credential credential_;  // token_ filled in from the file
  bool loaded_ = false;
  std::chrono::steady_clock::time_point next_check_{};
  struct stat stat_ {};
};

// A client.authentication.k8s.io exec plugin (v1 or v1beta1), run as client-go runs it: the
// command with its args, the agent's environment plus the configured one plus
// KUBERNETES_EXEC_INFO, stdin from /dev/null; its stdout is an ExecCredential whose status
// carries a token and/or client certificate data and an optional expirationTimestamp. The
// answer is kept until it expires or Invalidate() is called.
struct ExecPluginConfig {
  std::string api_version;  // "client.authentication.k8s.io/v1" or ".../v1beta1"
  std::string command;      // a name looked up in PATH, or a path
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  // provideClusterInfo: KUBERNETES_EXEC_INFO's spec.cluster gets the server and CA.
  bool provide_cluster_info = false;
  std::string cluster_server;
  std::string cluster_ca_pem;
  std::string what;  // names the plugin in errors: "kubeconfig /x: users[admin].user.exec"
  std::chrono::milliseconds timeout{30000};
};

class ExecCredentialPlugin : public CredentialSource {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  explicit ExecCredentialPlugin(ExecPluginConfig config, Clock clock = {});
  KubeResult<Credential> Current() override;
  void Invalidate() override;

  // How many times the command ran (tests check the cache with it).
  int runs() const;

 private:
  KubeResult<Credential> Run();

  mutable std::mutex mu_;
  ExecPluginConfig config_;
  Clock clock_;
  std::optional<Credential> cached_;
  std::optional<std::chrono::system_clock::time_point> expires_;
  int runs_ = 0;
};

// ParseRfc3339 (util/rfc3339.h), where the client's callers have always found it.
using ::xlb::ParseRfc3339;

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_CREDENTIALS_H
