// The one result type of the tree: a value, or the error that prevented it.
//
// Result<T, E> serves every layer, each with the error its callers can act on: the kernel
// boundary (E = Error below, an errno and the call that failed; the default), configuration
// files (E = ConfigErrors, every problem with its file, document and field:
// userspace/model/config_error.h) and the Kubernetes client (E = KubeError, with the HTTP
// status and Retry-After: userspace/kube/client/kube_error.h). Those headers only name their
// error and alias the template, so the accessors, the macros and the tests exist once.
//
// Why util/ and not loader/: maps/typed_map.h reports its syscalls through Result, and maps/
// may depend on nothing; model/, policy/ and the kube client have no reason to link libbpf.
// util/ depends on nothing (the standard library only), and every folder may depend on it.
//
// No exceptions: the planner and the sync path run these in a loop, and a failure is an
// ordinary answer there (bpftrace's util/result.h, Envoy's SysCallResult, tl::expected are the
// models). A failed lookup of value() is a programmer error and still throws
// std::bad_variant_access, as std::expected's would; check ok() first, or use the macros.
//
//   XLB_TRY(store.PutBackend(id, backend));             // a Result<void>, or any Result
//   XLB_ASSIGN_OR_RETURN(auto table, BuildTable(...));  // `table` is the value itself
//
// Both return the error, unchanged, from the enclosing function, whose own Result must have
// the same error type (its value type may differ). They use `return`, so they do not work in
// a coroutine (the kube client's co_return paths spell it out).
#ifndef XLB_UTIL_RESULT_H
#define XLB_UTIL_RESULT_H

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace xlb {

// What failed at the kernel boundary and why. libbpf's low-level calls return -errno (libbpf
// >= 1.0 always does, and also sets errno); its object calls return NULL and set errno. Either
// is turned into an Error right at the call, from the return value where there is one, so
// nothing between the call and the check can clobber the error code.
//
// `err` is a positive errno; `what` names the call and its object
// ("bpf_map_create(xlb_maglev_v3 inner)"), never the errno text, which ToString() adds.
struct Error {
  int err = 0;
  std::string what;

  // From a libbpf return value `ret` = -errno.
  static Error FromRet(int ret, std::string what) {
    return Error{ret < 0 ? -ret : EINVAL, std::move(what)};
  }
  // For calls that report failure through NULL or -1: save errno in a local right after
  // the call and pass that (building `what` may allocate, and allocation may touch errno).
  static Error FromErrno(int saved_errno, std::string what) {
    return Error{saved_errno != 0 ? saved_errno : EINVAL, std::move(what)};
  }

  bool NotFound() const { return err == ENOENT; }

  // The same error, said from one level up: "service 7: bpf_map_update_elem(...)".
  Error Within(const std::string& context) && { return Error{err, context + ": " + what}; }

  std::string ToString() const {
    // The kernel's ENOTSUPP (524) is not in libc's table.
    const char* text = err == 524 ? "operation not supported by this kernel" : std::strerror(err);
    return what + ": " + text + " (errno " + std::to_string(err) + ")";
  }
};

// Implicit from a T and from an E, so a function returns either as it is: `return table;`,
// `return Error{EINVAL, "..."};`. T and E must differ, or neither constructor could be told
// from the other.
template <typename T, typename E = Error>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, std::decay_t<E>>,
                "Result<T, E> needs distinct value and error types");

 public:
  using value_type = T;
  using error_type = E;

  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const& { return std::get<1>(v_); }
  // Moves the error out, to return it from the caller (what the macros do).
  E&& take_error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, E> v_;
};

// Success without a value, or the error.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  Result() = default;
  Result(E error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }

  const E& error() const& { return *error_; }
  E&& take_error() && { return std::move(*error_); }

 private:
  std::optional<E> error_;
};

// The usual check after a libbpf call that returns 0 or -errno.
inline Result<void> CheckRet(int ret, const char* what) {
  if (ret < 0) {
    return Error::FromRet(ret, what);
  }
  return {};
}

}  // namespace xlb

#define XLB_RESULT_CONCAT_INNER_(a, b) a##b
#define XLB_RESULT_CONCAT_(a, b) XLB_RESULT_CONCAT_INNER_(a, b)

// Returns the error of a Result expression from the enclosing function; the value, if any, is
// dropped. Variadic so that an expression with a comma outside parentheses
// (`Get<K, V>(...)`) is one argument.
#define XLB_TRY(...)                                  \
  do {                                                \
    auto xlb_try_result_ = (__VA_ARGS__);             \
    if (!xlb_try_result_.ok()) {                      \
      return std::move(xlb_try_result_).take_error(); \
    }                                                 \
  } while (0)

// `lhs = value of expr`, or returns the error of expr from the enclosing function. `lhs` is a
// declaration (`auto x`, `const auto& x`: the reference binds to a hidden local that lives to
// the end of the scope) or an existing variable. Expands to several statements: not the
// body of an unbraced if.
#define XLB_ASSIGN_OR_RETURN(lhs, ...) \
  XLB_ASSIGN_OR_RETURN_IMPL_(XLB_RESULT_CONCAT_(xlb_result_, __COUNTER__), lhs, __VA_ARGS__)

#define XLB_ASSIGN_OR_RETURN_IMPL_(result, lhs, ...) \
  auto result = (__VA_ARGS__);                       \
  if (!result.ok()) {                                \
    return std::move(result).take_error();           \
  }                                                  \
  lhs = std::move(result).value()

#endif  // XLB_UTIL_RESULT_H
