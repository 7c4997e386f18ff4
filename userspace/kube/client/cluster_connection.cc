#include "userspace/kube/client/cluster_connection.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>

#include "userspace/kube/client/text_util.h"

namespace xlb::kube {

namespace {

bool IsIpv6Literal(const std::string& host) {
  return host.find(':') != std::string::npos;
}

std::string BracketedHost(const std::string& host) {
  return IsIpv6Literal(host) ? "[" + host + "]" : host;
}

KubeResult<uint16_t> ParsePort(const std::string& text, const std::string& what) {
  int port = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, port);
  if (text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos ||
      ec != std::errc() || ptr != end) {
    return KubeError{what + ": \"" + text + "\" is not a port number"};
  }
  if (port < 1 || port > 65535) return KubeError{what + ": port " + text + " is out of range"};
  return static_cast<uint16_t>(port);
}

}  // namespace

std::string ClusterConnection::ServerUrl() const {
  return std::string(tls ? "https://" : "http://") + HostHeader() + path_prefix;
}

std::string ClusterConnection::HostHeader() const {
  return BracketedHost(host) + ":" + std::to_string(port);
}

std::string ClusterConnection::VerifyName() const {
  return tls_server_name.empty() ? host : tls_server_name;
}

KubeResult<ServerAddress> ParseServerUrl(const std::string& url) {
  ServerAddress address;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    address.tls = false;
    address.port = 80;
    rest = url.substr(7);
  } else {
    return KubeError{"\"" + url + "\" is not an http:// or https:// URL"};
  }
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) {
    address.path_prefix = rest.substr(slash);
    while (!address.path_prefix.empty() && address.path_prefix.back() == '/') {
      address.path_prefix.pop_back();
    }
  }
  std::string port_text;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return KubeError{"\"" + url + "\": unclosed '[' in the host"};
    address.host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return KubeError{"\"" + url + "\": junk after the IPv6 address"};
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    address.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (address.host.empty()) return KubeError{"\"" + url + "\" has no host"};
  if (!port_text.empty()) {
    XLB_ASSIGN_OR_RETURN(address.port, ParsePort(port_text, "\"" + url + "\""));
  }
  return address;
}

KubeResult<ClusterConnection> InClusterConnection(const InClusterOptions& options) {
  auto getenv = options.getenv;
  if (!getenv) {
    getenv = [](const std::string& name) -> std::optional<std::string> {
      const char* v = std::getenv(name.c_str());
      return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
    };
  }
  const auto host = getenv("KUBERNETES_SERVICE_HOST");
  const auto port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    return KubeError{
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (is this "
        "running in a pod?)"};
  }
  ClusterConnection c;
  c.origin = "in-cluster";
  c.tls = true;
  c.host = *host;
  if (c.host.size() > 2 && c.host.front() == '[' && c.host.back() == ']') {
    c.host = c.host.substr(1, c.host.size() - 2);
  }
  XLB_ASSIGN_OR_RETURN(c.port, ParsePort(*port, "in-cluster: KUBERNETES_SERVICE_PORT"));

  const std::string dir = options.service_account_dir;
  XLB_ASSIGN_OR_RETURN(c.ca_pem, ReadFileText(dir + "/ca.crt", "in-cluster: service account CA"));
  auto token = std::make_shared<TokenFileCredential>(
      dir + "/token", "in-cluster: service account token", options.token_recheck);
  XLB_TRY(token->Current());
  c.credentials = std::move(token);
  if (auto ns = ReadFileText(dir + "/namespace", "namespace")) {
    c.default_namespace = TrimWhitespace(*ns);
  }
  return c;
}

namespace {

// Reading one kubeconfig, with the file name in every error.
class KubeconfigReader {
 public:
  KubeconfigReader(std::string path, const KubeconfigOptions& options)
      : path_(std::move(path)), options_(options) {
    dir_ = std::filesystem::path(path_).parent_path().string();
  }

  KubeResult<ClusterConnection> Read();

 private:
  KubeError Fail(const std::string& field, const std::string& message) const {
    return KubeError{"kubeconfig " + path_ + ": " + (field.empty() ? "" : field + ": ") + message};
  }
  std::string Resolve(const std::string& file) const {
    if (file.empty() || file[0] == '/' || dir_.empty()) return file;
    return dir_ + "/" + file;
  }
  // The named entry of a list of {name: ..., <key>: {...}} (clusters, users, contexts).
  KubeResult<YAML::Node> Entry(const YAML::Node& root, const std::string& list,
                               const std::string& key, const std::string& name,
                               const std::string& wanted_by) const;
  KubeResult<std::optional<std::string>> String(const YAML::Node& map, const std::string& key,
                                                const std::string& field) const;
  KubeResult<std::optional<bool>> Bool(const YAML::Node& map, const std::string& key,
                                       const std::string& field) const;
  // A PEM given as `key` (a file) or `key`-data (base64); "" when neither.
  KubeResult<std::string> FileOrData(const YAML::Node& map, const std::string& key,
                                     const std::string& field) const;
  KubeResult<bool> ReadUser(const YAML::Node& user, const std::string& field,
                            ClusterConnection& c) const;

  std::string path_;
  std::string dir_;
  const KubeconfigOptions& options_;
};

KubeResult<YAML::Node> KubeconfigReader::Entry(const YAML::Node& root, const std::string& list,
                                               const std::string& key, const std::string& name,
                                               const std::string& wanted_by) const {
  const YAML::Node entries = root[list];
  if (entries && !entries.IsSequence()) return Fail(list, "expected a list");
  if (entries) {
    for (size_t i = 0; i < entries.size(); ++i) {
      const YAML::Node e = entries[i];
      const std::string field = list + "[" + std::to_string(i) + "]";
      if (!e.IsMap()) return Fail(field, "expected a mapping");
      XLB_ASSIGN_OR_RETURN(auto entry_name, String(e, "name", field + ".name"));
      if (entry_name.value_or("") != name) continue;
      const YAML::Node body = e[key];
      if (!body || !body.IsMap()) {
        return Fail(list + "[" + name + "]." + key, "missing or not a mapping");
      }
      return body;
    }
  }
  return Fail(wanted_by, "no " + key + " named \"" + name + "\" in " + list);
}

KubeResult<std::optional<std::string>> KubeconfigReader::String(const YAML::Node& map,
                                                                const std::string& key,
                                                                const std::string& field) const {
  const YAML::Node n = map[key];
  if (!n || n.IsNull()) return std::optional<std::string>();
  if (!n.IsScalar()) return Fail(field, "expected a string");
  return std::optional<std::string>(n.Scalar());
}

KubeResult<std::optional<bool>> KubeconfigReader::Bool(const YAML::Node& map,
                                                       const std::string& key,
                                                       const std::string& field) const {
  const YAML::Node n = map[key];
  if (!n || n.IsNull()) return std::optional<bool>();
  bool value = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
    return Fail(field, "expected true or false, got \"" + (n.IsScalar() ? n.Scalar() : "") + "\"");
  }
  return std::optional<bool>(value);
}

KubeResult<std::string> KubeconfigReader::FileOrData(const YAML::Node& map, const std::string& key,
                                                     const std::string& field) const {
  XLB_ASSIGN_OR_RETURN(auto data, String(map, key + "-data", field + "-data"));
  if (data && !data->empty()) {
    auto decoded = Base64Decode(*data);
    if (!decoded) return Fail(field + "-data", "not valid base64");
    return *decoded;
  }
  XLB_ASSIGN_OR_RETURN(auto file, String(map, key, field));
  if (file && !file->empty()) {
    auto text = ReadFileText(Resolve(*file), "file");
    if (!text) return Fail(field, text.error().message);
    return *text;
  }
  return std::string();
}

KubeResult<bool> KubeconfigReader::ReadUser(const YAML::Node& user, const std::string& field,
                                            ClusterConnection& c) const {
  Credential fixed;
  XLB_ASSIGN_OR_RETURN(auto cert,
                       FileOrData(user, "client-certificate", field + ".client-certificate"));
  XLB_ASSIGN_OR_RETURN(auto key, FileOrData(user, "client-key", field + ".client-key"));
  if (cert.empty() != key.empty()) {
    return Fail(field, "client-certificate and client-key go together; only one is set");
  }
  fixed.client_cert_pem = cert;
  fixed.client_key_pem = key;

  XLB_ASSIGN_OR_RETURN(auto token, String(user, "token", field + ".token"));
  XLB_ASSIGN_OR_RETURN(auto token_file, String(user, "tokenFile", field + ".tokenFile"));
  for (const char* unsupported : {"auth-provider", "username"}) {
    if (user[unsupported]) {
      return Fail(field + "." + unsupported,
                  "not supported (use a token, tokenFile, client certificate or exec plugin)");
    }
  }
  const YAML::Node exec = user["exec"];
  if (exec && !exec.IsNull()) {
    const std::string ef = field + ".exec";
    if (!exec.IsMap()) return Fail(ef, "expected a mapping");
    ExecPluginConfig plugin;
    plugin.what = "kubeconfig " + path_ + ": " + ef;
    XLB_ASSIGN_OR_RETURN(auto api_version, String(exec, "apiVersion", ef + ".apiVersion"));
    plugin.api_version = api_version.value_or("");
    if (plugin.api_version != "client.authentication.k8s.io/v1" &&
        plugin.api_version != "client.authentication.k8s.io/v1beta1") {
      return Fail(ef + ".apiVersion", "\"" + plugin.api_version +
                                          "\" is not supported (client.authentication.k8s.io/v1 "
                                          "or client.authentication.k8s.io/v1beta1)");
    }
    XLB_ASSIGN_OR_RETURN(auto command, String(exec, "command", ef + ".command"));
    if (!command || command->empty()) return Fail(ef + ".command", "missing");
    plugin.command = *command;
    // kubectl resolves a command with a path separator against the kubeconfig's directory.
    if (plugin.command.find('/') != std::string::npos) plugin.command = Resolve(plugin.command);
    const YAML::Node args = exec["args"];
    if (args && !args.IsNull()) {
      if (!args.IsSequence()) return Fail(ef + ".args", "expected a list of strings");
      for (size_t i = 0; i < args.size(); ++i) {
        if (!args[i].IsScalar()) {
          return Fail(ef + ".args[" + std::to_string(i) + "]", "expected a string");
        }
        plugin.args.push_back(args[i].Scalar());
      }
    }
    const YAML::Node env = exec["env"];
    if (env && !env.IsNull()) {
      if (!env.IsSequence()) return Fail(ef + ".env", "expected a list of {name, value}");
      for (size_t i = 0; i < env.size(); ++i) {
        const std::string vf = ef + ".env[" + std::to_string(i) + "]";
        if (!env[i].IsMap()) return Fail(vf, "expected {name, value}");
        XLB_ASSIGN_OR_RETURN(auto name, String(env[i], "name", vf + ".name"));
        if (!name || name->empty()) return Fail(vf + ".name", "missing");
        XLB_ASSIGN_OR_RETURN(auto value, String(env[i], "value", vf + ".value"));
        plugin.env.emplace_back(*name, value.value_or(""));
      }
    }
    XLB_ASSIGN_OR_RETURN(auto provide,
                         Bool(exec, "provideClusterInfo", ef + ".provideClusterInfo"));
    plugin.provide_cluster_info = provide.value_or(false);
    plugin.cluster_server = c.ServerUrl();
    plugin.cluster_ca_pem = c.ca_pem;
    c.credentials = std::make_shared<ExecCredentialPlugin>(std::move(plugin), options_.clock);
    return true;
  }
  if (token_file && !token_file->empty()) {
    auto source = std::make_shared<TokenFileCredential>(
        Resolve(*token_file), "kubeconfig " + path_ + ": " + field + ".tokenFile",
        options_.token_recheck, fixed);
    XLB_TRY(source->Current());
    c.credentials = std::move(source);
    return true;
  }
  fixed.token = token.value_or("");
  if (!fixed.token.empty() || !fixed.client_cert_pem.empty()) {
    c.credentials = std::make_shared<StaticCredential>(std::move(fixed));
  }
  return true;
}

KubeResult<ClusterConnection> KubeconfigReader::Read() {
  XLB_ASSIGN_OR_RETURN(auto text, ReadFileText(path_, "kubeconfig"));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Fail("", "not valid YAML: " + std::string(e.what()));
  }
  if (!root.IsMap()) return Fail("", "expected a mapping at the top");

  std::string context_name = options_.context;
  std::string context_field = "context \"" + context_name + "\"";
  if (context_name.empty()) {
    XLB_ASSIGN_OR_RETURN(auto current, String(root, "current-context", "current-context"));
    if (!current || current->empty()) {
      return Fail("current-context", "not set, and no context was named");
    }
    context_name = *current;
    context_field = "current-context";
  }
  XLB_ASSIGN_OR_RETURN(auto context,
                       Entry(root, "contexts", "context", context_name, context_field));
  const std::string cf = "contexts[" + context_name + "].context";
  XLB_ASSIGN_OR_RETURN(auto cluster_name, String(context, "cluster", cf + ".cluster"));
  if (!cluster_name || cluster_name->empty()) return Fail(cf + ".cluster", "missing");
  XLB_ASSIGN_OR_RETURN(auto user_name, String(context, "user", cf + ".user"));
  XLB_ASSIGN_OR_RETURN(auto ns, String(context, "namespace", cf + ".namespace"));

  ClusterConnection c;
  c.origin = "kubeconfig " + path_ + " (context " + context_name + ")";
  c.default_namespace = ns.value_or("");

  XLB_ASSIGN_OR_RETURN(auto cluster,
                       Entry(root, "clusters", "cluster", *cluster_name, cf + ".cluster"));
  const std::string kf = "clusters[" + *cluster_name + "].cluster";
  XLB_ASSIGN_OR_RETURN(auto server, String(cluster, "server", kf + ".server"));
  if (!server || server->empty()) return Fail(kf + ".server", "missing");
  auto address = ParseServerUrl(*server);
  if (!address) return Fail(kf + ".server", address.error().message);
  c.tls = address->tls;
  c.host = address->host;
  c.port = address->port;
  c.path_prefix = address->path_prefix;
  XLB_ASSIGN_OR_RETURN(auto server_name,
                       String(cluster, "tls-server-name", kf + ".tls-server-name"));
  c.tls_server_name = server_name.value_or("");
  XLB_ASSIGN_OR_RETURN(auto insecure,
                       Bool(cluster, "insecure-skip-tls-verify", kf + ".insecure-skip-tls-verify"));
  c.insecure_skip_tls_verify = insecure.value_or(false);
  XLB_ASSIGN_OR_RETURN(c.ca_pem,
                       FileOrData(cluster, "certificate-authority", kf + ".certificate-authority"));
  if (c.insecure_skip_tls_verify && !c.ca_pem.empty()) {
    // kubectl refuses this combination too: it would silently not check the CA given.
    return Fail(kf, "insecure-skip-tls-verify and a certificate-authority exclude each other");
  }

  if (user_name && !user_name->empty()) {
    XLB_ASSIGN_OR_RETURN(auto user, Entry(root, "users", "user", *user_name, cf + ".user"));
    XLB_TRY(ReadUser(user, "users[" + *user_name + "].user", c));
  }
  return c;
}

}  // namespace

KubeResult<ClusterConnection> KubeconfigConnection(const std::string& path,
                                                   const KubeconfigOptions& options) {
  return KubeconfigReader(path, options).Read();
}

}  // namespace xlb::kube
