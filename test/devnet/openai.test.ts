import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { test } from 'node:test'
import OpenAI from 'openai'
import type { DevnetNodeInfo } from '../../src/cli/devnet.ts'
import { verifyReceipt } from '../../src/inference/index.ts'
import { INFERENCE_LIMITS, TINY_MODEL } from '../../src/params/index.ts'
import { startDevnet } from '../cli-runner.ts'
import { freePortBase, tempDir } from '../helpers.ts'

/** The official OpenAI client against a multi-process devnet whose edge (node 0) hosts no model. */
test('the OpenAI client gets answers from hosts elsewhere on the mesh', { timeout: 300_000 }, async (t) => {
  const base = await freePortBase(3)
  const dir = join(await tempDir(t), 'devnet')
  const { nodes } = await startDevnet(t, dir, ['--nodes', '3', '--base-port', String(base), '--block-time', '1000'])
  const [edge, ...hosts] = nodes as [DevnetNodeInfo, ...DevnetNodeInfo[]]
  const hostIds = hosts.map((h) => h.peerId)
  const client = new OpenAI({ baseURL: `${edge.apiUrl}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 60_000 })

  // models: the built-in tiny model, by name, with its CID and both hosts
  const models = []
  for await (const m of client.models.list()) models.push(m)
  assert.equal(models.length, 1)
  const model = models[0] as unknown as { id: string; object: string; llmesh: { cid: string; hosts: string[] } }
  assert.equal(model.id, TINY_MODEL.name)
  assert.equal(model.object, 'model')
  assert.deepEqual([...model.llmesh.hosts].sort(), [...hostIds].sort())
  const cid = model.llmesh.cid

  const checkReceipt = (header: string | null, text: string): string => {
    assert.ok(header, 'x-llmesh-receipt header')
    const receipt = verifyReceipt(Buffer.from(header, 'base64'))
    assert.equal(receipt.client, edge.peerId)
    assert.equal(receipt.model, cid)
    assert.equal(Buffer.from(receipt.output).toString('hex'), createHash('sha256').update(text).digest('hex'))
    return receipt.host
  }

  // a chat completion, by name; the host is another node and the receipt verifies
  const messages = [{ role: 'user' as const, content: 'Say something about meshes.' }]
  const { data: chat, response } = await client.chat.completions
    .create({ model: TINY_MODEL.name, messages, max_tokens: 24, temperature: 0 })
    .withResponse()
  const host = response.headers.get('x-llmesh-host')
  assert.ok(host != null && hostIds.includes(host), `x-llmesh-host ${host} is one of the hosts`)
  assert.notEqual(host, edge.peerId)
  assert.equal(chat.object, 'chat.completion')
  const text = chat.choices[0]?.message.content ?? ''
  assert.ok(text.length > 0)
  assert.equal(chat.choices[0]?.finish_reason, 'length')
  assert.equal(chat.usage?.completion_tokens, 24)
  assert.ok((chat.usage?.prompt_tokens ?? 0) > 0)
  assert.equal(checkReceipt(response.headers.get('x-llmesh-receipt'), text), host)

  // reproducible: the same greedy request, by CID this time, gives the same text (whichever host serves it)
  const again = await client.chat.completions.create({ model: cid, messages, max_tokens: 24, temperature: 0 })
  assert.equal(again.choices[0]?.message.content, text)

  // streamed: the same text in pieces, then the finish reason, the receipt and usage
  const stream = await client.chat.completions.create({
    model: cid,
    messages,
    max_tokens: 24,
    stream: true,
    stream_options: { include_usage: true }
  })
  let streamed = ''
  let finish: string | null = null
  let receipt: string | undefined
  let usage: { completion_tokens: number } | undefined
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk')
    streamed += chunk.choices[0]?.delta.content ?? ''
    finish = chunk.choices[0]?.finish_reason ?? finish
    receipt = (chunk as unknown as { llmesh?: { receipt: string } }).llmesh?.receipt ?? receipt
    if (chunk.usage != null) usage = chunk.usage
  }
  assert.equal(streamed, text)
  assert.equal(finish, 'length')
  assert.equal(usage?.completion_tokens, 24)
  assert.ok(hostIds.includes(checkReceipt(receipt ?? null, streamed)))

  // a plain completion
  const completion = await client.completions.create({ model: cid, prompt: 'Once upon a time', max_tokens: 8 })
  assert.equal(completion.object, 'text_completion')
  assert.equal(completion.usage?.completion_tokens, 8)
  assert.ok((completion.choices[0]?.text.length ?? 0) > 0)

  // bad input: OpenAI-shaped errors, the node unaffected
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages }),
    (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(err.status, 404)
      assert.equal(err.code, 'model_not_found')
      return true
    }
  )
  await assert.rejects(
    client.chat.completions.create({ model: cid, messages: [{ role: 'user', content: 'x'.repeat(INFERENCE_LIMITS.maxPromptBytes + 1) }] }),
    (err: InstanceType<typeof OpenAI.APIError>) => err.status === 413
  )
  await assert.rejects(client.chat.completions.create({ model: cid, messages, n: 2 }), (err: InstanceType<typeof OpenAI.APIError>) => {
    assert.equal(err.status, 400)
    assert.match(err.message, /n/)
    return true
  })
  const malformed = await fetch(`${edge.apiUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"model": '
  })
  assert.equal(malformed.status, 400)
  assert.equal(((await malformed.json()) as { error: { type: string } }).error.type, 'invalid_request_error')
  const wrongType = await fetch(`${edge.apiUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: cid, messages: 'hello' })
  })
  assert.equal(wrongType.status, 400)
  const huge = await fetch(`${edge.apiUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: cid, prompt: 'y'.repeat(2 * 1024 * 1024) })
  })
  assert.equal(huge.status, 413)
  const after = await client.completions.create({ model: cid, prompt: 'still serving', max_tokens: 4 })
  assert.equal(after.usage?.completion_tokens, 4)

  // the chain knows the model and its price; every edge has an escrow to pay hosts from
  const fees = (await (await fetch(`${edge.apiUrl}/mesh/fees`)).json()) as { models: Array<{ cid: string; pricePerToken: string }> }
  assert.equal(fees.models.length, 1)
  assert.equal(fees.models[0]?.cid, cid)
  assert.ok(BigInt(fees.models[0]?.pricePerToken ?? '0') > 0n)
  const account = (await (await fetch(`${edge.apiUrl}/mesh/accounts/${edge.peerId}`)).json()) as { escrow: { balance: string } | null }
  assert.ok(BigInt(account.escrow?.balance ?? '0') > 0n)
  const economics = (await (await fetch(`${edge.apiUrl}/mesh/economics`)).json()) as Record<string, unknown>
  for (const key of ['totalSupply', 'treasury', 'feesRedeemed', 'paidToHosts', 'paidToValidators', 'paidToTreasury'])
    assert.ok(key in economics, key)
})
