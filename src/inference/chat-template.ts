import type { ChatMessage } from './engine.ts'

/**
 * The chat template used when a model file carries none (the tiny model, base models), and by
 * the echo engine. Each message is its role marker on a line, then its content on the next;
 * the prompt ends with an open assistant turn:
 *
 *     <|system|>
 *     You are brief.
 *     <|user|>
 *     Hello
 *     <|assistant|>
 *
 * A base model may carry on and write the next `<|user|>` turn itself: pass `stop: ['<|user|>']`
 * to end there.
 */
export function renderChatFallback(messages: readonly ChatMessage[]): string {
  let out = ''
  for (const m of messages) out += `<|${m.role}|>\n${m.content}\n`
  return `${out}<|assistant|>\n`
}
