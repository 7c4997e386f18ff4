// The one error type at the kernel boundary.
//
// libbpf's low-level calls return -errno (libbpf >= 1.0 always does, and also sets errno);
// its object calls return NULL and set errno. Either is turned into a Result right at the
// call, from the return value where there is one, so nothing between the call and the check
// can clobber the error code. No exceptions: the sync path runs these in a loop.
#ifndef XLB_LOADER_RESULT_H
#define XLB_LOADER_RESULT_H

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace xlb {

// What failed and why. `err` is a positive errno; `what` names the call and its object
// ("bpf_map_create(xlb_maglev_v1 inner)"), never the errno text, which ToString() adds.
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

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

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

  const Error& error() const { return std::get<1>(v_); }
  Error&& take_error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }

  const Error& error() const { return *error_; }
  Error&& take_error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

// The usual check after a libbpf call that returns 0 or -errno.
inline Result<void> CheckRet(int ret, const char* what) {
  if (ret < 0) {
    return Error::FromRet(ret, what);
  }
  return {};
}

}  // namespace xlb

// Returns the error of a Result<...> expression from the enclosing function.
#define XLB_TRY(expr)                                 \
  do {                                                \
    auto xlb_try_result_ = (expr);                    \
    if (!xlb_try_result_.ok()) {                      \
      return std::move(xlb_try_result_).take_error(); \
    }                                                 \
  } while (0)

#endif  // XLB_LOADER_RESULT_H
