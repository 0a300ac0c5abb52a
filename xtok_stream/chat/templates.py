"""Chat templates in their upstream formats, used by ``xtok demo --chat``, the tests and
``pipelines/chat-distill.yaml`` (which carries the same text inline)."""

# Qwen2's ChatML (without its default system prompt)
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Llama-3's header layout (bos, <|start_header_id|>role<|end_header_id|>\n\n content, end of
# turn), with DeepSeek's own BOS/EOS as the special tokens
LLAMA3_STYLE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

# the demo's models: student qwen2 in ChatML, teachers DeepSeek in the Llama-3 layout and
# Mistral in mistral-common's own instruct encoding
DEMO = {"pkg:qwen2": CHATML, "pkg:deepseek-v4": LLAMA3_STYLE, "pkg:mistral-v3": "mistral-common"}
