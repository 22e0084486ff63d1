// Classifies one input with MXNet's prediction API from C++, with RAII
// wrappers around the handles.
//
//   classify_cpp MODEL-symbol.json MODEL-0000.params INPUT.params [INPUT_NAME]
//
// INPUT.params is an NDArray list file whose first array is the input.
#include <mxnet/c_predict_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(int rc, const char *what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + MXGetLastError());
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class NDList {
 public:
  explicit NDList(const std::string &bytes) {
    check(MXNDListCreate(bytes.data(), static_cast<int>(bytes.size()), &handle_, &length_), "MXNDListCreate");
  }
  ~NDList() { MXNDListFree(handle_); }
  NDList(const NDList &) = delete;
  NDList &operator=(const NDList &) = delete;

  std::vector<float> get(mx_uint index, std::vector<mx_uint> *shape) const {
    const char *key;
    const mx_float *data;
    const mx_uint *dims;
    mx_uint ndim;
    check(MXNDListGet(handle_, index, &key, &data, &dims, &ndim), "MXNDListGet");
    shape->assign(dims, dims + ndim);
    size_t n = std::accumulate(shape->begin(), shape->end(), size_t{1}, std::multiplies<size_t>());
    return std::vector<float>(data, data + n);
  }

 private:
  NDListHandle handle_ = nullptr;
  mx_uint length_ = 0;
};

class Predictor {
 public:
  Predictor(const std::string &json, const std::string &params, const std::string &input,
            const std::vector<mx_uint> &shape) {
    const char *keys[] = {input.c_str()};
    mx_uint indptr[] = {0, static_cast<mx_uint>(shape.size())};
    check(MXPredCreate(json.c_str(), params.data(), static_cast<int>(params.size()), 1, 0, 1, keys, indptr,
                       shape.data(), &handle_),
          "MXPredCreate");
  }
  ~Predictor() { MXPredFree(handle_); }
  Predictor(const Predictor &) = delete;
  Predictor &operator=(const Predictor &) = delete;

  std::vector<float> run(const std::string &input, const std::vector<float> &data, std::vector<mx_uint> *shape) {
    check(MXPredSetInput(handle_, input.c_str(), data.data(), static_cast<mx_uint>(data.size())), "MXPredSetInput");
    check(MXPredForward(handle_), "MXPredForward");
    mx_uint *dims;
    mx_uint ndim;
    check(MXPredGetOutputShape(handle_, 0, &dims, &ndim), "MXPredGetOutputShape");
    shape->assign(dims, dims + ndim);
    size_t n = std::accumulate(shape->begin(), shape->end(), size_t{1}, std::multiplies<size_t>());
    std::vector<float> out(n);
    check(MXPredGetOutput(handle_, 0, out.data(), static_cast<mx_uint>(n)), "MXPredGetOutput");
    return out;
  }

 private:
  PredictorHandle handle_ = nullptr;
};

}  // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL-symbol.json MODEL-0000.params INPUT.params [INPUT_NAME]\n", argv[0]);
    return 2;
  }
  const std::string input_name = argc > 4 ? argv[4] : "data";
  try {
    NDList list(read_file(argv[3]));
    std::vector<mx_uint> in_shape;
    std::vector<float> input = list.get(0, &in_shape);
    Predictor pred(read_file(argv[1]), read_file(argv[2]), input_name, in_shape);
    std::vector<mx_uint> out_shape;
    std::vector<float> out = pred.run(input_name, input, &out_shape);

    std::printf("output shape:");
    for (mx_uint d : out_shape) std::printf(" %u", d);
    std::printf("\n");
    size_t batch = out_shape.empty() ? 1 : out_shape[0];
    size_t classes = out.size() / std::max<size_t>(batch, 1);
    for (size_t b = 0; b < batch; b++) {
      std::vector<size_t> order(classes);
      std::iota(order.begin(), order.end(), 0);
      const float *row = out.data() + b * classes;
      size_t k = std::min<size_t>(5, classes);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [row](size_t i, size_t j) { return row[i] > row[j]; });
      std::printf("image %zu top-5:", b);
      for (size_t i = 0; i < k; i++) std::printf(" %zu (%.4f)", order[i], row[order[i]]);
      std::printf("\n");
    }
    if (std::getenv("MXNET_EXAMPLE_DUMP")) {
      for (size_t i = 0; i < out.size(); i++) std::printf("output[%zu] = %.9g\n", i, out[i]);
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
