// The TLS material of one test API server: a CA made at start-up and a server certificate it
// signed for IP:127.0.0.1 and DNS:localhost, both ECDSA P-256, made with the OpenSSL C API.
#ifndef XLB_TESTS_KUBE_APISERVER_TLS_MATERIAL_H
#define XLB_TESTS_KUBE_APISERVER_TLS_MATERIAL_H

#include <string>

namespace xlb::testing {

struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;  // the server certificate
  std::string key_pem;   // its private key
};

// Throws std::runtime_error naming the OpenSSL call that failed.
TlsMaterial MakeTlsMaterial();

}  // namespace xlb::testing

#endif  // XLB_TESTS_KUBE_APISERVER_TLS_MATERIAL_H
