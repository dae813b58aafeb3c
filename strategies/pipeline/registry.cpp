// The pipeline registry: one row per strategy. Adding a strategy = one header + one row here.
#include "direct_pipeline.hpp"
#include "pipeline.hpp"

namespace anubis {

namespace {

template <class P>
std::unique_ptr<Pipeline> make_pipeline(const PipelineConfig& config, AnyStore& store,
                                        Metrics& metrics) {
  return std::make_unique<P>(config, store, metrics);
}

}  // namespace

std::span<const ConcurrencyStrategy> concurrency_strategies() {
  static const ConcurrencyStrategy kRows[] = {
      {DirectPipeline::kName, "I/O threads -> one bounded queue -> worker pool",
       &DirectPipeline::check, &make_pipeline<DirectPipeline>},
  };
  return kRows;
}

}  // namespace anubis
