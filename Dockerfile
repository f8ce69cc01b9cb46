# mmrqa as a container: `docker run mmrqa BIDS_DIR OUTPUT_DIR participant`.
#
#   docker build -t mmrqa:latest \
#     --build-arg VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' mmrqa_bids/__about__.py)" \
#     --build-arg VCS_REF="$(git rev-parse HEAD)" .
#
# Stage 1 builds the wheel from the source tree; stage 2 installs that wheel with its [llm]
# and [train] extras on a CUDA-capable PyTorch base, whose torch is kept (a constraint file
# pins it, so no requirement can swap it for another build).
#
# The core image (metrics, default classifier grader, reports; no torch, no LLM graders) is
# the same runtime stage on the plain Python base with no extras:
#   docker build -t mmrqa:core --build-arg PYTORCH_IMAGE=python:3.11.9-slim-bookworm \
#     --build-arg MMRQA_EXTRAS= .
# Where no registry is reachable, `make container` builds both on a local Debian base
# (scripts/ci/build_container.sh).
#
# Build arguments
#   PYTORCH_IMAGE      CUDA base with torch preinstalled, pinned by exact version; append
#                      "@sha256:<digest>" to pin the digest too (`docker buildx imagetools
#                      inspect pytorch/pytorch:<tag>` prints it).
#   PYTHON_IMAGE       image that builds the wheel (pure Python; any CPython >= 3.10).
#   MMRQA_EXTRAS       extras installed with the wheel: "llm,train" (default), or empty for
#                      the core image; extras need torch in the base (no CUDA torch is pulled).
#   VERSION, VCS_REF, BUILD_DATE   OCI labels.
#   MMRQA_BASE_MODEL   empty by default: no model weights in the image. A Hugging Face id
#                      (e.g. llava-hf/llava-onevision-qwen2-0.5b-ov-hf) is downloaded at build
#                      time into /opt/mmrqa/models/base, for offline sites.
#   MMRQA_BASE_MODEL_REVISION   commit or tag of that model (recommended: a commit hash).
#   MMRQA_ADAPTER, MMRQA_ADAPTER_REVISION   the same for a LoRA adapter on the Hub, into
#                      /opt/mmrqa/models/adapter.
# With baked weights, run offline with:
#   docker run --rm -e HF_HUB_OFFLINE=1 ... mmrqa:offline /data /out participant \
#     --grader llava --model /opt/mmrqa/models/base --adapter /opt/mmrqa/models/adapter
# Without baked weights, mount a model folder instead (-v /models:/models:ro --model /models/...).
#
# Read-only use (what CI checks):
#   docker run --rm --read-only --tmpfs /tmp -u "$(id -u):$(id -g)" \
#     -v "$PWD/bids:/data:ro" -v "$PWD/out:/out" -e HF_HUB_OFFLINE=1 mmrqa:latest /data /out participant
# (any uid works: nothing needs a passwd entry; without -u the image's uid 1000 runs it).
# Everything mmrqa writes goes to OUTPUT_DIR, the work directory (default under /tmp) and the
# caches redirected to /tmp below.

ARG PYTHON_IMAGE=python:3.11.9-slim-bookworm
ARG PYTORCH_IMAGE=pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime

# ---------------------------------------------------------------------------- wheel ----------
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2.post1
COPY pyproject.toml README.md ./
COPY mmrqa_bids ./mmrqa_bids
COPY templates ./templates
RUN python -m build --wheel --outdir /dist .

# -------------------------------------------------------------------------- runtime ----------
FROM ${PYTORCH_IMAGE} AS runtime

ARG MMRQA_BASE_MODEL=""
ARG MMRQA_BASE_MODEL_REVISION=""
ARG MMRQA_ADAPTER=""
ARG MMRQA_ADAPTER_REVISION=""
ARG MMRQA_EXTRAS="llm,train"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Caches and configuration of every library point at /tmp, so that a read-only root file
# system with a writable /tmp is enough; no byte-code is written next to the packages.
# LOGNAME: Nipype's batch plugins (SLURM, SGE) name jobs after it and fail without it.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/mmrqa \
    MPLCONFIGDIR=/tmp/matplotlib \
    HF_HOME=/tmp/huggingface \
    NIPYPE_CONFIG_DIR=/tmp/nipype \
    NIPYPE_NO_ET=1 \
    LOGNAME=mmrqa

RUN groupadd --gid 1000 mmrqa \
    && useradd --uid 1000 --gid mmrqa --create-home --home-dir /home/mmrqa \
       --shell /usr/sbin/nologin mmrqa

COPY --from=wheel /dist/ /tmp/wheels/
# Keep the base image's torch (CUDA build) whatever the extras ask for; extras on a base
# without torch are an error, never a silent multi-GB download of some other torch build.
RUN if python -c "import torch" 2>/dev/null; then \
      python -c "import torch; print('torch==' + torch.__version__)"; \
    elif [ -n "${MMRQA_EXTRAS}" ]; then \
      echo "MMRQA_EXTRAS=${MMRQA_EXTRAS} needs torch in the base image; build the core image with MMRQA_EXTRAS=" >&2; \
      exit 1; \
    fi > /tmp/torch-constraint.txt \
    && wheel="$(ls /tmp/wheels/mmrqa-*.whl)" \
    && pip install --no-cache-dir --constraint /tmp/torch-constraint.txt "${wheel}${MMRQA_EXTRAS:+[${MMRQA_EXTRAS}]}" \
    && rm -rf /tmp/wheels /tmp/torch-constraint.txt \
    && mmrqa --version

# Optional weights for offline sites (nothing is downloaded unless the arguments are given).
RUN mkdir -p /opt/mmrqa/models \
    && if [ -n "${MMRQA_BASE_MODEL}" ]; then \
         python -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1], revision=sys.argv[2] or None, local_dir=sys.argv[3])' \
           "${MMRQA_BASE_MODEL}" "${MMRQA_BASE_MODEL_REVISION}" /opt/mmrqa/models/base; \
       fi \
    && if [ -n "${MMRQA_ADAPTER}" ]; then \
         python -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1], revision=sys.argv[2] or None, local_dir=sys.argv[3])' \
           "${MMRQA_ADAPTER}" "${MMRQA_ADAPTER_REVISION}" /opt/mmrqa/models/adapter; \
       fi \
    && rm -rf /tmp/huggingface \
    && chmod -R a+rX /opt/mmrqa

# Labels last: VERSION, VCS_REF and BUILD_DATE change on every build, and a RUN after their
# ARG would miss the layer cache each time.
ARG VERSION=unknown
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="mmrqa" \
      org.opencontainers.image.description="MRI quality grades (Good/Medium/Bad) and clinical narratives from signal metrics and a multimodal LLM, as a BIDS App" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.source="https://github.com/mmrqa/mmrqa" \
      org.opencontainers.image.url="https://github.com/mmrqa/mmrqa" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="mmrqa developers" \
      org.mmrqa.base-model="${MMRQA_BASE_MODEL}" \
      org.mmrqa.adapter="${MMRQA_ADAPTER}" \
      org.mmrqa.extras="${MMRQA_EXTRAS}"

# Numeric, so that runtimes enforcing runAsNonRoot can check it (uid 1000 = mmrqa).
USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["mmrqa"]
CMD ["--help"]
