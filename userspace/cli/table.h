// The human form of xlbctl's output: a table with a header row and columns aligned to their
// widest cell (numbers to the right, text to the left), like `ip -br` or `kubectl get`.
#ifndef XLB_USERSPACE_CLI_TABLE_H
#define XLB_USERSPACE_CLI_TABLE_H

#include <cstdio>
#include <string>
#include <vector>

namespace xlb::cli {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // One row; missing cells are empty, extra ones are dropped.
  void Add(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }

  // Header and rows, two spaces between columns, no trailing blanks.
  std::string Render() const;
  void Print(std::FILE* out = stdout) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace xlb::cli

#endif  // XLB_USERSPACE_CLI_TABLE_H
