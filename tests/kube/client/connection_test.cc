// Connection configuration: in-cluster service account, kubeconfig files (every field the
// client reads, and the errors for each), token files that rotate, exec credential plugins.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "tests/pkt/temp_dir.h"
#include "userspace/kube/client/backoff.h"
#include "userspace/kube/client/cluster_connection.h"
#include "userspace/kube/client/credentials.h"
#include "userspace/kube/client/text_util.h"

namespace xlb::kube {
namespace {

using xlb::pkt::TempDir;

constexpr const char* kCaPem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

std::string Base64(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    out += i + 1 < in.size() ? a[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? a[v & 63] : '=';
  }
  return out;
}

std::string Token(const ClusterConnection& c) {
  if (!c.credentials) return "<anonymous>";
  auto cred = c.credentials->Current();
  return cred ? cred->token : "<error: " + cred.error().message + ">";
}

// --- in-cluster --------------------------------------------------------------------------

struct InCluster {
  TempDir dir;
  std::map<std::string, std::string> env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                         {"KUBERNETES_SERVICE_PORT", "443"}};
  InCluster() {
    dir.Write("token", "sa-token-1\n");
    dir.Write("ca.crt", kCaPem);
    dir.Write("namespace", "xlb-system");
  }
  InClusterOptions Options(std::chrono::milliseconds recheck = std::chrono::seconds(5)) {
    InClusterOptions o;
    o.service_account_dir = dir.path();
    o.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    o.token_recheck = recheck;
    return o;
  }
};

TEST(InCluster, ReadsEnvironmentAndServiceAccount) {
  InCluster ic;
  auto c = InClusterConnection(ic.Options());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->tls);
  EXPECT_EQ(c->host, "10.96.0.1");
  EXPECT_EQ(c->port, 443);
  EXPECT_EQ(c->ServerUrl(), "https://10.96.0.1:443");
  EXPECT_EQ(c->VerifyName(), "10.96.0.1");
  EXPECT_EQ(c->ca_pem, kCaPem);
  EXPECT_EQ(c->default_namespace, "xlb-system");
  EXPECT_EQ(Token(*c), "sa-token-1");
}

TEST(InCluster, Ipv6HostIsBracketedInTheUrl) {
  InCluster ic;
  ic.env["KUBERNETES_SERVICE_HOST"] = "fd00:10:96::1";
  ic.env["KUBERNETES_SERVICE_PORT"] = "6443";
  auto c = InClusterConnection(ic.Options());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "fd00:10:96::1");
  EXPECT_EQ(c->ServerUrl(), "https://[fd00:10:96::1]:6443");
  EXPECT_EQ(c->HostHeader(), "[fd00:10:96::1]:6443");
}

TEST(InCluster, ErrorsNameWhatIsMissing) {
  {
    InCluster ic;
    ic.env.erase("KUBERNETES_SERVICE_HOST");
    auto c = InClusterConnection(ic.Options());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  }
  {
    InCluster ic;
    ic.env["KUBERNETES_SERVICE_PORT"] = "https";
    auto c = InClusterConnection(ic.Options());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("KUBERNETES_SERVICE_PORT"), std::string::npos);
  }
  {
    InCluster ic;
    std::filesystem::remove(ic.dir.File("token"));
    auto c = InClusterConnection(ic.Options());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find(ic.dir.File("token")), std::string::npos) << c.error().message;
  }
  {
    InCluster ic;
    std::filesystem::remove(ic.dir.File("ca.crt"));
    auto c = InClusterConnection(ic.Options());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("ca.crt"), std::string::npos) << c.error().message;
  }
}

TEST(InCluster, RotatedTokenIsPickedUpAfterTheRecheckInterval) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kRecheck = std::chrono::seconds(1);
  InCluster ic;
  auto c = InClusterConnection(ic.Options(kRecheck));
  ASSERT_TRUE(c) << c.error().message;
  const Clock::time_point before_read = Clock::now();  // the file is read at or after this
  EXPECT_EQ(Token(*c), "sa-token-1");
  ic.dir.Write("token", "sa-token-2\n");
  // Within the interval the cached token stays (no stat per request). Checked only while
  // this test is surely within it: a loaded machine may take its time getting here.
  const std::string cached = Token(*c);
  if (Clock::now() - before_read < kRecheck) {
    EXPECT_EQ(cached, "sa-token-1");
  }
  // After it, the rewritten file is read: not sooner, and within a generous deadline.
  std::string token = cached;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(30);
  while (token != "sa-token-2" && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    token = Token(*c);
  }
  EXPECT_EQ(token, "sa-token-2");
  EXPECT_GE(Clock::now() - before_read, kRecheck);
}

TEST(InCluster, RotatedTokenIsPickedUpAtOnceAfterInvalidate) {
  InCluster ic;
  auto c = InClusterConnection(ic.Options(std::chrono::hours(1)));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(Token(*c), "sa-token-1");
  ic.dir.Write("token", "sa-token-2");
  EXPECT_EQ(Token(*c), "sa-token-1");
  c->credentials->Invalidate();  // what the client does on a 401
  EXPECT_EQ(Token(*c), "sa-token-2");
  // A token file gone for a moment (the kubelet's swap) keeps the last good token.
  std::filesystem::remove(ic.dir.File("token"));
  c->credentials->Invalidate();
  EXPECT_EQ(Token(*c), "sa-token-2");
}

// --- server URLs ---------------------------------------------------------------------------

TEST(ServerUrl, Forms) {
  auto a = ParseServerUrl("https://[2001:db8::1]:6443");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "2001:db8::1");
  EXPECT_EQ(a->port, 6443);
  EXPECT_TRUE(a->tls);
  auto b = ParseServerUrl("http://localhost/k8s/clusters/c-1/");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->host, "localhost");
  EXPECT_EQ(b->port, 80);
  EXPECT_EQ(b->path_prefix, "/k8s/clusters/c-1");
  auto c = ParseServerUrl("https://api.example.com");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 443);
  EXPECT_FALSE(ParseServerUrl("ftp://x"));
  EXPECT_FALSE(ParseServerUrl("https://host:99999"));
  EXPECT_FALSE(ParseServerUrl("https://[::1"));
  EXPECT_FALSE(ParseServerUrl("https://:443"));
}

// A port that is not a decimal number in 1..65535 is an error that names it, not an exception.
TEST(ServerUrl, MalformedPortsAreErrors) {
  for (const std::string port : {"6x", "+1", "-1", " 80", "123456", "99999999999999999999"}) {
    auto r = ParseServerUrl("https://host:" + port);
    ASSERT_FALSE(r) << port;
    EXPECT_EQ(r.error().message,
              "\"https://host:" + port + "\": \"" + port + "\" is not a port number");
  }
  auto zero = ParseServerUrl("https://host:0");
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().message, "\"https://host:0\": port 0 is out of range");
  auto high = ParseServerUrl("https://host:65536");
  ASSERT_FALSE(high);
  EXPECT_EQ(high.error().message, "\"https://host:65536\": port 65536 is out of range");
  auto highest = ParseServerUrl("https://host:65535");
  ASSERT_TRUE(highest);
  EXPECT_EQ(highest->port, 65535);
}

// --- kubeconfig ------------------------------------------------------------------------------

std::string TwoContextKubeconfig(const std::string& ca_field) {
  return R"(apiVersion: v1
kind: Config
current-context: east
clusters:
- name: east-cluster
  cluster:
    server: https://[2001:db8::10]:6443
    )" + ca_field +
         R"(
- name: west-cluster
  cluster:
    server: https://west.example.com:8443/prefix
    certificate-authority: certs/west-ca.pem
    tls-server-name: kubernetes.default.svc
contexts:
- name: east
  context: {cluster: east-cluster, user: east-admin, namespace: ns-east}
- name: west
  context: {cluster: west-cluster, user: west-admin}
users:
- name: east-admin
  user:
    token: east-token
- name: west-admin
  user:
    tokenFile: west.token
)";
}

TEST(Kubeconfig, CurrentContextWithCaData) {
  TempDir dir;
  const std::string path =
      dir.Write("config", TwoContextKubeconfig("certificate-authority-data: " + Base64(kCaPem)));
  auto c = KubeconfigConnection(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "2001:db8::10");
  EXPECT_EQ(c->port, 6443);
  EXPECT_EQ(c->ServerUrl(), "https://[2001:db8::10]:6443");
  EXPECT_EQ(c->ca_pem, kCaPem);
  EXPECT_EQ(c->default_namespace, "ns-east");
  EXPECT_EQ(Token(*c), "east-token");
  EXPECT_NE(c->origin.find(path), std::string::npos);
}

TEST(Kubeconfig, NamedContextResolvesPathsAgainstTheFilesDirectory) {
  TempDir dir;
  std::filesystem::create_directories(dir.File("certs"));
  dir.Write("certs/west-ca.pem", kCaPem);
  dir.Write("west.token", "west-token\n");
  const std::string path =
      dir.Write("config", TwoContextKubeconfig("insecure-skip-tls-verify: true"));
  KubeconfigOptions options;
  options.context = "west";
  auto c = KubeconfigConnection(path, options);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "west.example.com");
  EXPECT_EQ(c->port, 8443);
  EXPECT_EQ(c->path_prefix, "/prefix");
  EXPECT_EQ(c->VerifyName(), "kubernetes.default.svc");
  EXPECT_EQ(c->ca_pem, kCaPem);
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_EQ(Token(*c), "west-token");

  // The other context of the same file is insecure.
  auto east = KubeconfigConnection(path);
  ASSERT_TRUE(east) << east.error().message;
  EXPECT_TRUE(east->insecure_skip_tls_verify);
}

TEST(Kubeconfig, ClientCertificateFromFilesAndFromData) {
  TempDir dir;
  dir.Write("client.crt", "CERT PEM");
  dir.Write("client.key", "KEY PEM");
  const std::string path = dir.Write("config", R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://127.0.0.1:6443"}}]
contexts: [{name: c, context: {cluster: k, user: files}}, {name: d, context: {cluster: k, user: data}}]
users:
- name: files
  user: {client-certificate: client.crt, client-key: client.key}
- name: data
  user: {client-certificate-data: )" + Base64("CERT2") +
                                                   ", client-key-data: " + Base64("KEY2") + "}\n");
  auto c = KubeconfigConnection(path);
  ASSERT_TRUE(c) << c.error().message;
  auto cred = c->credentials->Current();
  ASSERT_TRUE(cred);
  EXPECT_EQ(cred->client_cert_pem, "CERT PEM");
  EXPECT_EQ(cred->client_key_pem, "KEY PEM");
  EXPECT_EQ(cred->token, "");
  KubeconfigOptions options;
  options.context = "d";
  auto d = KubeconfigConnection(path, options);
  ASSERT_TRUE(d) << d.error().message;
  auto cred2 = d->credentials->Current();
  ASSERT_TRUE(cred2);
  EXPECT_EQ(cred2->client_cert_pem, "CERT2");
  EXPECT_EQ(cred2->client_key_pem, "KEY2");
}

// Each broken kubeconfig is refused with the file and the field in the message.
TEST(Kubeconfig, ErrorsNameFileAndField) {
  struct Case {
    std::string name;
    std::string yaml;
    std::string field;  // must appear in the message
  };
  const std::string cluster =
      "clusters: [{name: k, cluster: {server: \"https://127.0.0.1:6443\"}}]\n";
  const std::string context = "contexts: [{name: c, context: {cluster: k, user: u}}]\n";
  const std::vector<Case> cases = {
      {"not yaml", "current-context: [\n", "not valid YAML"},
      {"no current context", cluster + context + "users: [{name: u, user: {token: t}}]\n",
       "current-context: not set"},
      {"unknown context", "current-context: nope\n" + cluster + context,
       "no context named \"nope\""},
      {"unknown cluster",
       "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\n",
       "contexts[c].context.cluster: no cluster named \"x\""},
      {"unknown user", "current-context: c\n" + cluster + context,
       "contexts[c].context.user: no user named \"u\""},
      {"no server", "current-context: c\nclusters: [{name: k, cluster: {}}]\n" + context,
       "clusters[k].cluster.server: missing"},
      {"bad server",
       "current-context: c\nclusters: [{name: k, cluster: {server: \"tcp://x\"}}]\n" + context,
       "clusters[k].cluster.server"},
      {"bad base64",
       "current-context: c\nclusters: [{name: k, cluster: {server: \"https://h\", "
       "certificate-authority-data: \"!!!\"}}]\n" +
           context + "users: [{name: u, user: {}}]\n",
       "clusters[k].cluster.certificate-authority-data: not valid base64"},
      {"missing CA file",
       "current-context: c\nclusters: [{name: k, cluster: {server: \"https://h\", "
       "certificate-authority: nope.pem}}]\n" +
           context + "users: [{name: u, user: {}}]\n",
       "clusters[k].cluster.certificate-authority: "},
      {"insecure bool",
       "current-context: c\nclusters: [{name: k, cluster: {server: \"https://h\", "
       "insecure-skip-tls-verify: maybe}}]\n" +
           context,
       "clusters[k].cluster.insecure-skip-tls-verify: expected true or false"},
      {"key without cert",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {client-key-data: " + Base64("k") + "}}]\n",
       "users[u].user: client-certificate and client-key go together"},
      {"missing key file",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {client-certificate-data: " + Base64("c") +
           ", client-key: gone.key}}]\n",
       "users[u].user.client-key: "},
      {"missing token file",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {tokenFile: gone.token}}]\n",
       "users[u].user.tokenFile"},
      {"endless token file",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {tokenFile: /dev/zero}}]\n",
       "users[u].user.tokenFile /dev/zero: larger than 16777216 bytes"},
      {"endless CA file",
       "current-context: c\nclusters: [{name: k, cluster: {server: \"https://h\", "
       "certificate-authority: /dev/zero}}]\n" +
           context + "users: [{name: u, user: {}}]\n",
       "/dev/zero: larger than 16777216 bytes"},
      {"exec api version",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1alpha1, "
           "command: x}}}]\n",
       "users[u].user.exec.apiVersion"},
      {"exec without command",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1}}}]\n",
       "users[u].user.exec.command: missing"},
      {"exec env",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: "
           "x, "
           "env: [{value: v}]}}}]\n",
       "users[u].user.exec.env[0].name: missing"},
      {"auth provider",
       "current-context: c\n" + cluster + context +
           "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n",
       "users[u].user.auth-provider: not supported"},
      {"clusters not a list", "current-context: c\nclusters: {}\n" + context,
       "clusters: expected a list"},
  };
  for (const auto& c : cases) {
    TempDir dir;
    const std::string path = dir.Write("config", c.yaml);
    auto result = KubeconfigConnection(path);
    ASSERT_FALSE(result) << c.name;
    const std::string& message = result.error().message;
    EXPECT_EQ(message.rfind("kubeconfig " + path + ": ", 0), 0u) << c.name << ": " << message;
    EXPECT_NE(message.find(c.field), std::string::npos) << c.name << ": " << message;
  }
  auto missing = KubeconfigConnection("/nonexistent/xlb/config");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/xlb/config"), std::string::npos);
  auto endless = KubeconfigConnection("/dev/zero");
  ASSERT_FALSE(endless);
  EXPECT_NE(endless.error().message.find("larger than"), std::string::npos)
      << endless.error().message;
}

// --- exec credential plugins --------------------------------------------------------------------

// A plugin script that records each run (its exec info and an env var) and prints `credential`.
std::string WritePlugin(const TempDir& dir, const std::string& credential_json, int exit_code = 0) {
  return dir.Write("plugin.sh",
                   "#!/bin/sh\n"
                   "echo run >> \"" +
                       dir.File("runs") +
                       "\"\n"
                       "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"" +
                       dir.File("exec-info") +
                       "\"\n"
                       "printf '%s %s' \"$PLUGIN_FLAVOUR\" \"$1\" > \"" +
                       dir.File("env") +
                       "\"\n"
                       "cat <<'JSON'\n" +
                       credential_json +
                       "\nJSON\n"
                       "exit " +
                       std::to_string(exit_code) + "\n",
                   0700);
}

std::string ExecKubeconfig(const std::string& api_version, bool provide_cluster_info = false) {
  return "current-context: c\n"
         "clusters: [{name: k, cluster: {server: \"https://127.0.0.1:6443\", "
         "certificate-authority-data: " +
         Base64(kCaPem) +
         "}}]\n"
         "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
         "users:\n"
         "- name: u\n"
         "  user:\n"
         "    exec:\n"
         "      apiVersion: " +
         api_version +
         "\n"
         "      command: ./plugin.sh\n"
         "      args: [--flag]\n"
         "      env: [{name: PLUGIN_FLAVOUR, value: vanilla}]\n"
         "      provideClusterInfo: " +
         (provide_cluster_info ? "true" : "false") + "\n";
}

int Runs(const TempDir& dir) {
  auto text = ReadFileText(dir.File("runs"), "runs");
  if (!text) return 0;
  return static_cast<int>(std::count(text->begin(), text->end(), '\n'));
}

TEST(ExecPlugin, TokenIsCachedUntilExpiryAndAfter401RunAgain) {
  TempDir dir;
  WritePlugin(dir, R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
    "status":{"token":"exec-token","expirationTimestamp":"2030-01-01T00:00:00Z"}})");
  const std::string path =
      dir.Write("config", ExecKubeconfig("client.authentication.k8s.io/v1", true));
  auto now = std::chrono::system_clock::from_time_t(1893456000 - 3600);  // 2029-12-31T23:00Z
  KubeconfigOptions options;
  options.clock = [&now] { return now; };
  auto c = KubeconfigConnection(path, options);
  ASSERT_TRUE(c) << c.error().message;

  EXPECT_EQ(Token(*c), "exec-token");
  EXPECT_EQ(Token(*c), "exec-token");
  EXPECT_EQ(Runs(dir), 1) << "cached until expiry";

  // What the plugin was given: KUBERNETES_EXEC_INFO with the cluster, its env and args.
  auto info = nlohmann::json::parse(*ReadFileText(dir.File("exec-info"), "exec-info"));
  EXPECT_EQ(info["apiVersion"], "client.authentication.k8s.io/v1");
  EXPECT_EQ(info["kind"], "ExecCredential");
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_EQ(info["spec"]["cluster"]["server"], "https://127.0.0.1:6443");
  EXPECT_EQ(info["spec"]["cluster"]["certificate-authority-data"], Base64(kCaPem));
  EXPECT_EQ(*ReadFileText(dir.File("env"), "env"), "vanilla --flag");

  now += std::chrono::hours(2);  // past expirationTimestamp
  EXPECT_EQ(Token(*c), "exec-token");
  EXPECT_EQ(Runs(dir), 2) << "re-run after expiry";

  c->credentials->Invalidate();  // a 401
  EXPECT_EQ(Token(*c), "exec-token");
  EXPECT_EQ(Runs(dir), 3) << "re-run after a 401";
}

TEST(ExecPlugin, V1beta1ClientCertificateWithoutExpiryIsKept) {
  TempDir dir;
  WritePlugin(dir, R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential",
    "status":{"clientCertificateData":"CERT","clientKeyData":"KEY"}})");
  const std::string path =
      dir.Write("config", ExecKubeconfig("client.authentication.k8s.io/v1beta1"));
  auto c = KubeconfigConnection(path);
  ASSERT_TRUE(c) << c.error().message;
  for (int i = 0; i < 3; ++i) {
    auto cred = c->credentials->Current();
    ASSERT_TRUE(cred) << cred.error().message;
    EXPECT_EQ(cred->client_cert_pem, "CERT");
    EXPECT_EQ(cred->client_key_pem, "KEY");
  }
  EXPECT_EQ(Runs(dir), 1);
  auto info = nlohmann::json::parse(*ReadFileText(dir.File("exec-info"), "exec-info"));
  EXPECT_FALSE(info["spec"].contains("cluster")) << "provideClusterInfo is off";
}

TEST(ExecPlugin, FailuresNameTheKubeconfigUserAndWhatWentWrong) {
  struct Case {
    std::string name;
    std::string output;
    int exit_code;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"exit status", "{}", 3, "exited with status 3"},
      {"not json", "hello", 0, "did not print an ExecCredential"},
      {"wrong kind", R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"Pod","status":{}})",
       0, "kind is \"Pod\""},
      {"wrong version",
       R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"t"}})",
       0, "differs from the configured"},
      {"empty status",
       R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}})", 0,
       "neither token nor clientCertificateData"},
      {"bad expiry",
       R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"tomorrow"}})",
       0, "expirationTimestamp \"tomorrow\""},
  };
  for (const auto& c : cases) {
    TempDir dir;
    WritePlugin(dir, c.output, c.exit_code);
    const std::string path = dir.Write("config", ExecKubeconfig("client.authentication.k8s.io/v1"));
    auto conn = KubeconfigConnection(path);
    ASSERT_TRUE(conn) << c.name << ": " << conn.error().message;
    auto cred = conn->credentials->Current();
    ASSERT_FALSE(cred) << c.name;
    EXPECT_NE(cred.error().message.find("kubeconfig " + path + ": users[u].user.exec"),
              std::string::npos)
        << c.name << ": " << cred.error().message;
    EXPECT_NE(cred.error().message.find(c.expected), std::string::npos)
        << c.name << ": " << cred.error().message;
  }
  // A command that does not exist.
  TempDir dir;
  std::string yaml = ExecKubeconfig("client.authentication.k8s.io/v1");
  yaml.replace(yaml.find("./plugin.sh"), 11, "xlb-no-such-plugin");
  auto conn = KubeconfigConnection(dir.Write("config", yaml));
  ASSERT_TRUE(conn);
  auto cred = conn->credentials->Current();
  ASSERT_FALSE(cred);
  EXPECT_NE(cred.error().message.find("cannot run \"xlb-no-such-plugin\""), std::string::npos)
      << cred.error().message;
}

// Runs a plugin made of `script` once with `timeout`: the error it must fail with (a substring),
// within `bound`.
void ExpectPluginFails(const char* script, std::chrono::milliseconds timeout,
                       const std::string& error, std::chrono::seconds bound) {
  TempDir dir;
  ExecPluginConfig config;
  config.api_version = "client.authentication.k8s.io/v1";
  config.command = dir.Write("plugin.sh", script, 0700);
  config.what = "test plugin";
  config.timeout = timeout;
  ExecCredentialPlugin plugin(config);
  const auto start = std::chrono::steady_clock::now();
  auto cred = plugin.Current();
  ASSERT_FALSE(cred);
  EXPECT_NE(cred.error().message.find(error), std::string::npos) << cred.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, bound);
}

TEST(ExecPlugin, AHungPluginIsKilledAtTheTimeout) {
  ExpectPluginFails("#!/bin/sh\nexec sleep 30\n", std::chrono::milliseconds(300),
                    "did not answer within 300 ms", std::chrono::seconds(5));
}

// A plugin that never stops printing (and never exits) is killed once it printed more than any
// credential needs: an error, not a hang on a full pipe and not all of memory.
TEST(ExecPlugin, AnEndlessPluginIsKilledOnceItPrintedTooMuch) {
  ExpectPluginFails("#!/bin/sh\nexec yes xlb\n", std::chrono::seconds(60),
                    "printed more than 4194304 bytes", std::chrono::seconds(30));
}

TEST(Rfc3339, Forms) {
  const auto base = std::chrono::system_clock::from_time_t(1893456000);  // 2030-01-01T00:00:00Z
  EXPECT_EQ(ParseRfc3339("2030-01-01T00:00:00Z"), base);
  EXPECT_EQ(ParseRfc3339("2030-01-01T02:00:00+02:00"), base);
  EXPECT_EQ(ParseRfc3339("2030-01-01T00:00:00.5Z"), base + std::chrono::milliseconds(500));
  EXPECT_FALSE(ParseRfc3339("2030-01-01"));
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00"));
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00Zjunk"));
}

// The offset is exactly +HH:MM: a short one was once read as if it had its six characters,
// past the end of the text (here the skipped "ab" made it look complete).
TEST(Rfc3339, ShortOffsetsAreRejected) {
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00+1:1"));
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00+1:1ab"));
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00+01:1a"));
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00+0100"));
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00+"));
  EXPECT_FALSE(ParseRfc3339("2030-01-01T00:00:00+ 1: 1"));
}

// Beyond what system_clock holds (about 1677 to 2262) a time reads as the clock's bound, so a
// credential that "expires" in 9999 never does, instead of a signed overflow.
TEST(Rfc3339, TimesBeyondTheClockClampToItsBounds) {
  using Clock = std::chrono::system_clock;
  EXPECT_EQ(ParseRfc3339("9999-12-31T23:59:59Z"), Clock::time_point::max());
  EXPECT_EQ(ParseRfc3339("2263-01-01T00:00:00.999999999-23:59"), Clock::time_point::max());
  EXPECT_EQ(ParseRfc3339("1000-01-01T00:00:00Z"), Clock::time_point::min());
  EXPECT_EQ(ParseRfc3339("2262-01-01T00:00:00Z"),
            Clock::from_time_t(9214646400));  // still inside
}

TEST(Base64, DecodesAndRejects) {
  EXPECT_EQ(Base64Decode("aGVsbG8="), "hello");
  EXPECT_EQ(Base64Decode("aGVs\nbG8h"), "hello!");
  EXPECT_EQ(Base64Decode(Base64(kCaPem)), kCaPem);
  EXPECT_FALSE(Base64Decode("a"));
  EXPECT_FALSE(Base64Decode("aGVsbG8=x"));
  EXPECT_FALSE(Base64Decode("a$=="));
}

// --- back-off -----------------------------------------------------------------------------------

TEST(Backoff, GrowsWithinJitterBoundsUpToTheCapAndResets) {
  BackoffPolicy policy;
  policy.initial = std::chrono::milliseconds(100);
  policy.max = std::chrono::milliseconds(30000);
  policy.multiplier = 2.0;
  policy.jitter = 0.2;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Backoff backoff(policy, seed);
    double expected = 100;
    for (int i = 0; i < 20; ++i) {
      const auto wait = backoff.Next().count();
      const double base = std::min(expected, 30000.0);
      EXPECT_GE(wait, static_cast<int64_t>(base * 0.8) - 1) << "attempt " << i;
      EXPECT_LE(wait, std::min<int64_t>(static_cast<int64_t>(base * 1.2) + 1, 30000))
          << "attempt " << i;
      expected *= 2;
    }
    backoff.Reset();
    EXPECT_LE(backoff.Next().count(), 121);
  }
}

TEST(Backoff, JitterSpreadsAndZeroJitterIsExact) {
  BackoffPolicy policy;
  policy.initial = std::chrono::milliseconds(1000);
  policy.jitter = 0.5;
  std::set<int64_t> firsts;
  for (uint64_t seed = 1; seed <= 50; ++seed) firsts.insert(Backoff(policy, seed).Next().count());
  EXPECT_GT(firsts.size(), 20u) << "jitter must spread the first wait";
  policy.jitter = 0;
  policy.max = std::chrono::milliseconds(5000);
  Backoff exact(policy, 1);
  EXPECT_EQ(exact.Next().count(), 1000);
  EXPECT_EQ(exact.Next().count(), 2000);
  EXPECT_EQ(exact.Next().count(), 4000);
  EXPECT_EQ(exact.Next().count(), 5000);
  EXPECT_EQ(exact.Next().count(), 5000);
}

}  // namespace
}  // namespace xlb::kube
