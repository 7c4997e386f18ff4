// How to reach one cluster's API server and who to say we are: the address, the trust anchor
// for its certificate, and a credential source. Built from the pod's own service account
// (in-cluster, the DaemonSet case) or from a kubeconfig (remote clusters of the clusterset,
// and development), following client-go's rules for both.
//
// A value type: copies share the credential source (and so its cache).
#ifndef XLB_USERSPACE_KUBE_CLIENT_CLUSTER_CONNECTION_H
#define XLB_USERSPACE_KUBE_CLIENT_CLUSTER_CONNECTION_H

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "userspace/kube/client/credentials.h"
#include "userspace/kube/client/kube_error.h"

namespace xlb::kube {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct ClusterConnection {
  bool tls = true;   // https (false: plain http, for tests and local proxies)
  std::string host;  // "10.96.0.1", "2001:db8::1" (no brackets), "api.example.com"
  uint16_t port = 443;
  std::string
      path_prefix;  // a server URL's path ("/k8s/clusters/c-1" behind a proxy), no '/' at the end
  // The name the certificate must carry (and the SNI when it is a DNS name): tls-server-name,
  // else `host`.
  std::string tls_server_name;
  std::string ca_pem;  // empty: the system's trust store
  bool insecure_skip_tls_verify = false;
  std::shared_ptr<CredentialSource> credentials;  // null: anonymous
  std::string default_namespace;                  // the context's or the pod's namespace
  // Where this came from, for messages: "in-cluster", "kubeconfig /root/.kube/config (ctx)".
  std::string origin;

  // "https://10.96.0.1:443", "https://[2001:db8::1]:6443".
  std::string ServerUrl() const;
  // The Host header: "10.96.0.1:443", "[2001:db8::1]:6443".
  std::string HostHeader() const;
  // tls_server_name, or host.
  std::string VerifyName() const;
};

// Splits "https://host:port/prefix" ("https://[::1]:6443", "http://localhost"); the port
// defaults to 443/80.
struct ServerAddress {
  bool tls = true;
  std::string host;
  uint16_t port = 443;
  std::string path_prefix;
};
KubeResult<ServerAddress> ParseServerUrl(const std::string& url);

struct InClusterOptions {
  std::string service_account_dir = kServiceAccountDir;
  // Reads an environment variable; the process environment when not set.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  std::chrono::milliseconds token_recheck = std::chrono::seconds(5);
};

// The pod's own API server: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT, the service
// account's token (re-read when the kubelet rotates it), ca.crt and namespace.
KubeResult<ClusterConnection> InClusterConnection(const InClusterOptions& options = {});

struct KubeconfigOptions {
  std::string context;  // empty: current-context
  std::chrono::milliseconds token_recheck = std::chrono::seconds(5);
  // For exec plugins' expiry (tests move time); system_clock when not set.
  ExecCredentialPlugin::Clock clock;
};

// One context of a kubeconfig file. Relative paths in it (certificate-authority,
// client-certificate, client-key, tokenFile, an exec command with a '/') are relative to the
// file's directory, as kubectl reads them. Errors name the file and the field:
// "kubeconfig /x/config: users[admin].user.client-key: cannot read /x/k.pem: No such file...".
KubeResult<ClusterConnection> KubeconfigConnection(const std::string& path,
                                                   const KubeconfigOptions& options = {});

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_CLUSTER_CONNECTION_H
